package scim

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
)

const enterpriseURN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

func oktaUser(userName string) map[string]any {
	return map[string]any{
		"schemas":     []string{"urn:ietf:params:scim:schemas:core:2.0:User", enterpriseURN},
		"userName":    userName,
		"name":        map[string]any{"givenName": "Test", "familyName": "User"},
		"emails":      []any{map[string]any{"primary": true, "value": userName, "type": "work"}},
		"displayName": "Test User",
		"locale":      "en-US",
		"externalId":  "00u" + strings.Split(userName, "@")[0],
		"groups":      []any{},
		"password":    "1mz050nq",
		"active":      true,
		enterpriseURN: map[string]any{"employeeNumber": "42", "department": "R&D"},
	}
}

func TestUserLifecycle(t *testing.T) {
	e := newEnv(t)
	r := e.must(http.StatusCreated, "acme", http.MethodPost, "/Users", oktaUser("test.user@acme.com"))
	id, _ := r.body["id"].(string)
	loc := testBase + testPrefix + "/scim/acme/v2/Users/" + id
	if r.header.Get("Location") != loc {
		t.Errorf("Location = %q, want %q", r.header.Get("Location"), loc)
	}
	meta, _ := r.body["meta"].(map[string]any)
	if meta["location"] != loc || meta["resourceType"] != "User" || meta["created"] == nil || meta["lastModified"] == nil {
		t.Errorf("meta = %v", meta)
	}
	if strings.Contains(string(r.raw), "password") || strings.Contains(string(r.raw), "1mz050nq") || r.body["groups"] != nil {
		t.Errorf("password or groups returned: %s", r.raw)
	}
	want := map[string]any{
		"userName":    "test.user@acme.com",
		"externalId":  "00utest.user",
		"displayName": "Test User",
		"locale":      "en-US",
		"active":      true,
		"name":        map[string]any{"givenName": "Test", "familyName": "User"},
		"emails":      []any{map[string]any{"primary": true, "value": "test.user@acme.com", "type": "work"}},
		enterpriseURN: map[string]any{"employeeNumber": "42", "department": "R&D"},
	}
	for k, v := range want {
		if !reflect.DeepEqual(r.body[k], v) {
			t.Errorf("%s = %#v, want %#v", k, r.body[k], v)
		}
	}
	stored, err := e.store.GetUser("acme", id)
	if err != nil || stored.Source != store.SourceSCIM || stored.ExternalID != "00utest.user" || len(stored.Emails) != 1 {
		t.Fatalf("stored user = %+v, %v", stored, err)
	}
	if _, ok := stored.SCIM["password"]; ok {
		t.Fatal("password stored")
	}

	g := e.must(http.StatusOK, "acme", http.MethodGet, "/Users/"+id, nil)
	delete(g.body, "meta")
	delete(r.body, "meta")
	if !reflect.DeepEqual(g.body, r.body) {
		t.Errorf("GET differs from POST:\n%s\n%s", g.raw, r.raw)
	}

	// userName is unique case-insensitively, externalId exactly.
	dup := oktaUser("TEST.USER@acme.com")
	dup["externalId"] = "other"
	e.scimError(e.call("acme", http.MethodPost, "/Users", dup), http.StatusConflict, "uniqueness")
	dup = oktaUser("someone@acme.com")
	dup["externalId"] = "00utest.user"
	e.scimError(e.call("acme", http.MethodPost, "/Users", dup), http.StatusConflict, "uniqueness")
	e.scimError(e.call("acme", http.MethodPost, "/Users", map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}}), http.StatusBadRequest, "invalidValue")
	e.scimError(e.call("acme", http.MethodPost, "/Users", `{"userName":`), http.StatusBadRequest, "invalidSyntax")

	// PUT replaces the user; Okta's PUT omits externalId, which is kept.
	put := map[string]any{
		"schemas":  []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
		"id":       id,
		"userName": "test.user@acme.com",
		"name":     map[string]any{"givenName": "Another", "middleName": "Excited", "familyName": "User"},
		"emails":   []any{map[string]any{"primary": true, "value": "test.user@acme.com", "type": "work", "display": "test.user@acme.com"}},
		"active":   true,
		"groups":   []any{},
		"meta":     map[string]any{"resourceType": "User"},
	}
	p := e.must(http.StatusOK, "acme", http.MethodPut, "/Users/"+id, put)
	if p.body["externalId"] != "00utest.user" || p.body["locale"] != nil || p.body[enterpriseURN] != nil || p.body["displayName"] != nil {
		t.Errorf("PUT result: %s", p.raw)
	}
	if !reflect.DeepEqual(p.body["name"], put["name"]) || !reflect.DeepEqual(p.body["emails"], put["emails"]) {
		t.Errorf("PUT name/emails: %s", p.raw)
	}

	for _, m := range []string{http.MethodGet, http.MethodDelete} {
		e.scimError(e.call("acme", m, "/Users/nope", nil), http.StatusNotFound, "")
	}
	e.scimError(e.call("acme", http.MethodPut, "/Users/nope", put), http.StatusNotFound, "")
	e.scimError(e.call("acme", http.MethodPatch, "/Users/nope", patchOp(map[string]any{"op": "replace", "path": "active", "value": false})), http.StatusNotFound, "")

	e.must(http.StatusNoContent, "acme", http.MethodDelete, "/Users/"+id, nil)
	e.scimError(e.call("acme", http.MethodGet, "/Users/"+id, nil), http.StatusNotFound, "")
	e.scimError(e.call("acme", http.MethodDelete, "/Users/"+id, nil), http.StatusNotFound, "")
	if gone, err := e.store.Deprovisioned("acme", "00utest.user", "", ""); err != nil || !gone {
		t.Fatalf("Deprovisioned after DELETE = %v, %v", gone, err)
	}
	// Provisioned again: a new user, and the marker is lifted.
	again := e.createUser("acme", "test.user@acme.com", map[string]any{"externalId": "00utest.user"})
	if again == id {
		t.Fatal("re-created user kept the old id")
	}
	if gone, _ := e.store.Deprovisioned("acme", "00utest.user", "test.user@acme.com", ""); gone {
		t.Fatal("marker survived re-provisioning")
	}

	var actions []string
	events, _ := e.store.ListAudit("acme", 100)
	for _, ev := range events {
		if ev.Actor == "scim" && ev.Outcome == "success" {
			actions = append(actions, ev.Action)
			if ev.SourceIP != "192.0.2.1" {
				t.Errorf("audit source %q", ev.SourceIP)
			}
		}
	}
	for _, a := range []string{"scim.user.create", "scim.user.update", "scim.user.delete"} {
		if !slices.Contains(actions, a) {
			t.Errorf("no %s audit event in %v", a, actions)
		}
	}
}

func TestUserFilters(t *testing.T) {
	e := newEnv(t)
	ids := map[string]string{}
	for i := range 5 {
		name := fmt.Sprintf("user%d@acme.com", i)
		ids[name] = e.createUser("acme", name, map[string]any{
			"externalId": fmt.Sprintf("Ext-%d", i),
			"active":     i != 3,
			"emails":     []any{map[string]any{"value": fmt.Sprintf("mail%d@acme.com", i%2), "type": "work"}},
		})
	}
	e.createUser("globex", "user1@acme.com", nil) // same userName in another org

	find := func(filter string) resp {
		t.Helper()
		return e.must(http.StatusOK, "acme", http.MethodGet, "/Users?filter="+url.QueryEscape(filter), nil)
	}
	for _, c := range []struct {
		filter string
		want   []string
	}{
		{`userName eq "USER1@acme.COM"`, []string{"user1@acme.com"}},
		{`username eq "user1@acme.com"`, []string{"user1@acme.com"}},
		{`externalId eq "Ext-2"`, []string{"user2@acme.com"}},
		{`externalId eq "ext-2"`, nil}, // externalId is case-exact
		{`id eq "` + ids["user4@acme.com"] + `"`, []string{"user4@acme.com"}},
		{`id eq "nope"`, nil},
		{`userName eq "nobody@acme.com"`, nil},
		{`userName eq "user1@acme.com" or userName eq "user2@acme.com"`, []string{"user1@acme.com", "user2@acme.com"}},
		{`userName eq "user1@acme.com" and active eq true`, []string{"user1@acme.com"}},
		{`active eq false and userName eq "user3@acme.com"`, []string{"user3@acme.com"}},
		{`userName eq "user1@acme.com" and externalId eq "Ext-2"`, nil},
		{`emails.value eq "MAIL1@acme.com"`, []string{"user1@acme.com", "user3@acme.com"}},
		{`emails[type eq "work" and value eq "mail0@acme.com"]`, []string{"user0@acme.com", "user2@acme.com", "user4@acme.com"}},
		{`emails[value eq "mail0@acme.com"] and not (userName eq "user2@acme.com")`, []string{"user0@acme.com", "user4@acme.com"}},
		// Filters the indexes cannot bound are checked against every user
		// of the organization (issue 16).
		{`displayName eq "x"`, nil},
		{`userName sw "USER"`, []string{"user0@acme.com", "user1@acme.com", "user2@acme.com", "user3@acme.com", "user4@acme.com"}},
		{`userName co "r2@"`, []string{"user2@acme.com"}},
		{`userName ew "4@ACME.com"`, []string{"user4@acme.com"}},
		{`userName ne "user1@acme.com"`, []string{"user0@acme.com", "user2@acme.com", "user3@acme.com", "user4@acme.com"}},
		{`active eq true`, []string{"user0@acme.com", "user1@acme.com", "user2@acme.com", "user4@acme.com"}},
		{`userName eq "user1@acme.com" or active eq false`, []string{"user1@acme.com", "user3@acme.com"}},
		{`not (userName eq "user1@acme.com")`, []string{"user0@acme.com", "user2@acme.com", "user3@acme.com", "user4@acme.com"}},
		{`userName pr`, []string{"user0@acme.com", "user1@acme.com", "user2@acme.com", "user3@acme.com", "user4@acme.com"}},
		{`displayName pr`, nil},
		{`externalId ge "Ext-3"`, []string{"user3@acme.com", "user4@acme.com"}},
		{`externalId lt "Ext-1"`, []string{"user0@acme.com"}},
		{`emails.value sw "MAIL1@"`, []string{"user1@acme.com", "user3@acme.com"}},
		{`emails[value ew "l0@acme.com"] and userName ne "user0@acme.com"`, []string{"user2@acme.com", "user4@acme.com"}},
		{`meta.lastModified gt "2000-01-01T00:00:00Z"`, []string{"user0@acme.com", "user1@acme.com", "user2@acme.com", "user3@acme.com", "user4@acme.com"}},
		{`meta.lastModified gt "2100-01-01T00:00:00Z"`, nil},
		{`userName co "\u212A"`, nil}, // no Unicode folding: KELVIN SIGN is not k
	} {
		r := find(c.filter)
		var got []string
		for _, res := range resources(t, r) {
			got = append(got, res["userName"].(string))
		}
		slices.Sort(got)
		if !slices.Equal(got, c.want) || num(r.body["totalResults"]) != len(c.want) || num(r.body["itemsPerPage"]) != len(c.want) {
			t.Errorf("%s: got %v (total %v, itemsPerPage %v), want %v", c.filter, got, r.body["totalResults"], r.body["itemsPerPage"], c.want)
		}
		if len(c.want) == 0 && !strings.Contains(string(r.raw), `"Resources":[]`) {
			t.Errorf("%s: empty result is not []: %s", c.filter, r.raw)
		}
	}
	// Operators an attribute's type does not have are refused.
	for _, f := range []string{`active gt true`, `emails[nosuch eq "x"]`, `userName[value eq "x"]`, `urn:example:nosuch:attr eq "x"`, `groups.value eq "x"`, `password pr`} {
		e.scimError(e.call("acme", http.MethodGet, "/Users?filter="+url.QueryEscape(f), nil), http.StatusBadRequest, "invalidFilter")
	}
	e.scimError(e.call("acme", http.MethodGet, "/Users?filter="+url.QueryEscape(`nosuch eq "x"`), nil), http.StatusBadRequest, "invalidFilter")
	e.scimError(e.call("acme", http.MethodGet, "/Users?filter="+url.QueryEscape(`userName eq`), nil), http.StatusBadRequest, "invalidFilter")

	// Pagination is stable and complete.
	var seen []string
	for start := 1; start <= 6; start += 2 {
		r := e.must(http.StatusOK, "acme", http.MethodGet, fmt.Sprintf("/Users?startIndex=%d&count=2", start), nil)
		res := resources(t, r)
		if num(r.body["totalResults"]) != 5 || num(r.body["startIndex"]) != start || num(r.body["itemsPerPage"]) != len(res) {
			t.Errorf("page %d: %s", start, r.raw)
		}
		for _, u := range res {
			seen = append(seen, u["id"].(string))
		}
	}
	if len(seen) != 5 || !slices.IsSorted(seen) {
		t.Errorf("pages gave %v", seen)
	}
	r := e.must(http.StatusOK, "acme", http.MethodGet, "/Users?count=0", nil)
	if num(r.body["totalResults"]) != 5 || num(r.body["itemsPerPage"]) != 0 || len(resources(t, r)) != 0 {
		t.Errorf("count=0: %s", r.raw)
	}
	r = e.must(http.StatusOK, "acme", http.MethodGet, "/Users?startIndex=99", nil)
	if num(r.body["totalResults"]) != 5 || len(resources(t, r)) != 0 {
		t.Errorf("past the end: %s", r.raw)
	}
	r = e.must(http.StatusOK, "acme", http.MethodGet, "/Users?filter="+url.QueryEscape(`emails.value eq "mail0@acme.com"`)+"&startIndex=2&count=1", nil)
	if res := resources(t, r); num(r.body["totalResults"]) != 3 || len(res) != 1 {
		t.Errorf("filtered page: %s", r.raw)
	}
	e.scimError(e.call("acme", http.MethodGet, "/Users?count=many", nil), http.StatusBadRequest, "")

	// An org with no users lists [] (not null).
	e2 := e.must(http.StatusOK, "globex", http.MethodGet, "/Groups", nil)
	if !strings.Contains(string(e2.raw), `"Resources":[]`) || num(e2.body["totalResults"]) != 0 || num(e2.body["itemsPerPage"]) != 0 {
		t.Errorf("empty list: %s", e2.raw)
	}

	// attributes and excludedAttributes.
	u1 := ids["user1@acme.com"]
	r = e.must(http.StatusOK, "acme", http.MethodGet, "/Users/"+u1+"?excludedAttributes=emails,externalId", nil)
	if r.body["emails"] != nil || r.body["externalId"] != nil || r.body["userName"] != "user1@acme.com" || r.body["id"] != u1 {
		t.Errorf("excludedAttributes: %s", r.raw)
	}
	r = e.must(http.StatusOK, "acme", http.MethodGet, "/Users?attributes=userName&filter="+url.QueryEscape(`id eq "`+u1+`"`), nil)
	if res := resources(t, r); len(res) != 1 || res[0]["userName"] != "user1@acme.com" || res[0]["active"] != nil || res[0]["emails"] != nil || res[0]["id"] != u1 {
		t.Errorf("attributes=userName: %s", r.raw)
	}
	r = e.must(http.StatusOK, "acme", http.MethodGet, "/Users/"+u1+"?attributes=emails.value", nil)
	if !reflect.DeepEqual(r.body["emails"], []any{map[string]any{"value": "mail1@acme.com"}}) {
		t.Errorf("attributes=emails.value: %s", r.raw)
	}
}

func TestUserPatchShapes(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		name  string
		ops   []map[string]any
		check func(t *testing.T, u map[string]any, s *store.User)
	}{
		{"okta deactivate (path-less value)", []map[string]any{{"op": "replace", "value": map[string]any{"active": false}}},
			func(t *testing.T, u map[string]any, s *store.User) {
				if u["active"] != false || s.Active {
					t.Errorf("active = %v", u["active"])
				}
			}},
		{"entra string boolean", []map[string]any{{"op": "Replace", "path": "active", "value": "False"}},
			func(t *testing.T, u map[string]any, s *store.User) {
				if s.Active {
					t.Error("still active")
				}
			}},
		{"entra string boolean without path, then back", []map[string]any{
			{"op": "Replace", "value": map[string]any{"active": "False"}},
			{"op": "REPLACE", "value": map[string]any{"active": "True"}},
		}, func(t *testing.T, u map[string]any, s *store.User) {
			if !s.Active {
				t.Error("not re-activated")
			}
		}},
		{"entra work email and name", []map[string]any{
			{"op": "Replace", "path": `emails[type eq "work"].value`, "value": "updated@acme.com"},
			{"op": "Replace", "path": "name.familyName", "value": "Updated"},
			{"op": "Replace", "path": "userName", "value": "renamed@acme.com"},
		}, func(t *testing.T, u map[string]any, s *store.User) {
			if len(s.Emails) != 1 || s.Emails[0] != (store.Email{Value: "updated@acme.com", Type: "work", Primary: true}) {
				t.Errorf("emails = %+v", s.Emails)
			}
			if s.FamilyName != "Updated" || s.GivenName != "Pat" || s.UserName != "renamed@acme.com" {
				t.Errorf("user = %+v", s)
			}
		}},
		{"value filter that matches nothing creates the value", []map[string]any{
			{"op": "Add", "path": `emails[type eq "home"].value`, "value": "home@example.org"},
		}, func(t *testing.T, u map[string]any, s *store.User) {
			if len(s.Emails) != 2 || s.Emails[1] != (store.Email{Value: "home@example.org", Type: "home"}) || !s.Emails[0].Primary {
				t.Errorf("emails = %+v", s.Emails)
			}
		}},
		{"add a primary email takes primary from the others", []map[string]any{
			{"op": "add", "path": "emails", "value": []any{map[string]any{"value": "new@acme.com", "type": "other", "primary": "true"}}},
		}, func(t *testing.T, u map[string]any, s *store.User) {
			if len(s.Emails) != 2 || s.Emails[0].Primary || !s.Emails[1].Primary {
				t.Errorf("emails = %+v", s.Emails)
			}
		}},
		{"entra path-less attribute paths and extension", []map[string]any{
			{"op": "Add", "value": map[string]any{
				"name.givenName":            "Patricia",
				"title":                     "Lead",
				enterpriseURN + ":division": "Ops",
				enterpriseURN:               map[string]any{"costCenter": "C1"},
			}},
		}, func(t *testing.T, u map[string]any, s *store.User) {
			ext, _ := u[enterpriseURN].(map[string]any)
			if s.GivenName != "Patricia" || u["title"] != "Lead" || ext["division"] != "Ops" || ext["costCenter"] != "C1" || ext["employeeNumber"] != "7" {
				t.Errorf("user = %v", u)
			}
		}},
		{"entra manager as a bare id", []map[string]any{
			{"op": "Add", "path": enterpriseURN + ":manager", "value": "boss-id"},
		}, func(t *testing.T, u map[string]any, s *store.User) {
			ext, _ := u[enterpriseURN].(map[string]any)
			if !reflect.DeepEqual(ext["manager"], map[string]any{"value": "boss-id"}) {
				t.Errorf("manager = %#v", ext["manager"])
			}
		}},
		{"remove attributes", []map[string]any{
			{"op": "remove", "path": "title"},
			{"op": "Remove", "path": `emails[type eq "work"]`},
			{"op": "remove", "path": enterpriseURN + ":employeeNumber"},
			{"op": "remove", "path": "externalId"},
		}, func(t *testing.T, u map[string]any, s *store.User) {
			if u["title"] != nil || len(s.Emails) != 0 || u[enterpriseURN] != nil || s.ExternalID != "" {
				t.Errorf("user = %v / %+v", u, s)
			}
		}},
		{"replace externalId and name as a whole", []map[string]any{
			{"op": "replace", "path": "externalId", "value": "ext-2"},
			{"op": "replace", "path": "name", "value": map[string]any{"givenName": "P"}},
		}, func(t *testing.T, u map[string]any, s *store.User) {
			if s.ExternalID != "ext-2" || s.GivenName != "P" || s.FamilyName != "Doe" {
				t.Errorf("user = %+v", s)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			userName := strings.NewReplacer(" ", "-", "(", "", ")", "", ",", "").Replace(c.name) + "@acme.com"
			id := e.createUser("acme", "x"+fmt.Sprint(len(userName))+userName, map[string]any{
				"externalId":  "ext-" + userName,
				"name":        map[string]any{"givenName": "Pat", "familyName": "Doe"},
				"displayName": "Pat Doe",
				"title":       "Engineer",
				"emails":      []any{map[string]any{"value": "pat@acme.com", "type": "work", "primary": true}},
				enterpriseURN: map[string]any{"employeeNumber": "7"},
			})
			r := e.must(http.StatusOK, "acme", http.MethodPatch, "/Users/"+id, patchOp(c.ops...))
			g := e.must(http.StatusOK, "acme", http.MethodGet, "/Users/"+id, nil)
			delete(r.body, "meta")
			delete(g.body, "meta")
			if !reflect.DeepEqual(r.body, g.body) {
				t.Errorf("PATCH response differs from GET:\n%s\n%s", r.raw, g.raw)
			}
			s, err := e.store.GetUser("acme", id)
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, g.body, s)
		})
	}

	id := e.createUser("acme", "errors@acme.com", map[string]any{"title": "T"})
	e.createUser("acme", "taken@acme.com", nil)
	for _, c := range []struct {
		op       map[string]any
		status   int
		scimType string
	}{
		{map[string]any{"op": "remove"}, http.StatusBadRequest, "noTarget"},
		{map[string]any{"op": "replace", "path": "nosuch", "value": "x"}, http.StatusBadRequest, "invalidPath"},
		{map[string]any{"op": "replace", "path": "groups", "value": []any{map[string]any{"value": "g"}}}, http.StatusBadRequest, "mutability"},
		{map[string]any{"op": "replace", "path": "active", "value": "maybe"}, http.StatusBadRequest, "invalidValue"},
		{map[string]any{"op": "replace", "path": "userName", "value": "TAKEN@acme.com"}, http.StatusConflict, "uniqueness"},
		{map[string]any{"op": "remove", "path": "userName"}, http.StatusBadRequest, "invalidValue"},
		{map[string]any{"op": "replace", "path": `emails[type eq "work" or type eq "home"].value`, "value": "x@acme.com"}, http.StatusBadRequest, "noTarget"},
		{map[string]any{"op": "frobnicate", "path": "title", "value": "x"}, http.StatusBadRequest, "invalidValue"},
	} {
		e.scimError(e.call("acme", http.MethodPatch, "/Users/"+id, patchOp(c.op)), c.status, c.scimType)
	}
	e.scimError(e.call("acme", http.MethodPatch, "/Users/"+id, map[string]any{"Operations": []any{map[string]any{"op": "remove", "path": "title"}}}), http.StatusBadRequest, "invalidSyntax") // no PatchOp schema (issue 16)
	if s, _ := e.store.GetUser("acme", id); s.SCIM["title"] != "T" || s.UserName != "errors@acme.com" {
		t.Errorf("a refused PATCH changed the user: %+v", s)
	}
}

func TestDeactivationEndsSessions(t *testing.T) {
	e := newEnv(t)
	id := e.createUser("acme", "sess@acme.com", nil)
	if err := e.store.CreateSession(&store.Session{ID: "s1", OrgID: "acme", UserID: id, AuthMethod: "saml", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	e.must(http.StatusOK, "acme", http.MethodPatch, "/Users/"+id, patchOp(map[string]any{"op": "replace", "value": map[string]any{"active": false}}))
	if _, err := e.store.GetSession("s1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("session survived deactivation: %v", err)
	}
	e.must(http.StatusOK, "acme", http.MethodPatch, "/Users/"+id, patchOp(map[string]any{"op": "replace", "path": "active", "value": true}))
	var actions []string
	events, _ := e.store.ListAudit("acme", 10)
	for _, ev := range events {
		actions = append(actions, ev.Action)
	}
	if !slices.Contains(actions, "scim.user.deactivate") || !slices.Contains(actions, "scim.user.reactivate") {
		t.Errorf("audit actions %v", actions)
	}
}

func TestCreateAdoptsUsersFromSignIn(t *testing.T) {
	e := newEnv(t)
	mk := func(u *store.User) *store.User {
		t.Helper()
		u.OrgID, u.Active = "acme", true
		if err := e.store.CreateUser(u); err != nil {
			t.Fatal(err)
		}
		return u
	}
	// By externalId (Okta: the SAML objectidentifier is the Okta user id).
	a := mk(&store.User{UserName: "alice@acme.com", ExternalID: "00uA", Source: store.SourceSAML, Emails: []store.Email{{Value: "alice@acme.com"}}})
	r := e.must(http.StatusCreated, "acme", http.MethodPost, "/Users", oktaUser("alice.a@acme.com"))
	_ = r
	body := oktaUser("alice.b@acme.com")
	body["externalId"] = "00uA"
	r = e.must(http.StatusCreated, "acme", http.MethodPost, "/Users", body)
	if r.body["id"] != a.ID || r.body["userName"] != "alice.b@acme.com" {
		t.Fatalf("not adopted by externalId: %s", r.raw)
	}
	if s, _ := e.store.GetUser("acme", a.ID); s.Source != store.SourceSCIM || s.SCIM[enterpriseURN] == nil {
		t.Fatalf("adopted user = %+v", s)
	}
	// By userName, case-insensitively (Entra ID: UPN = email).
	c := mk(&store.User{UserName: "carol@acme.com", ExternalID: "guid-c", Source: store.SourceSAML})
	r = e.must(http.StatusCreated, "acme", http.MethodPost, "/Users", oktaUser("Carol@acme.com"))
	if r.body["id"] != c.ID || r.body["externalId"] != "00uCarol" {
		t.Fatalf("not adopted by userName: %s", r.raw)
	}
	// By email.
	d := mk(&store.User{UserName: "dave@acme.com", Source: store.SourceSAML, Emails: []store.Email{{Value: "dave@acme.com"}}})
	body = oktaUser("d.smith@acme.com")
	body["emails"] = []any{map[string]any{"value": "DAVE@acme.com", "type": "work"}}
	r = e.must(http.StatusCreated, "acme", http.MethodPost, "/Users", body)
	if r.body["id"] != d.ID {
		t.Fatalf("not adopted by email: %s", r.raw)
	}
	// Provisioned users and local accounts are not adopted: that is a conflict.
	e.scimError(e.call("acme", http.MethodPost, "/Users", oktaUser("carol@acme.com")), http.StatusConflict, "uniqueness")
	mk(&store.User{UserName: "owner@acme.com", Source: store.SourceLocal})
	e.scimError(e.call("acme", http.MethodPost, "/Users", oktaUser("owner@acme.com")), http.StatusConflict, "uniqueness")
	if n, _ := e.store.CountUsers("acme"); n != 5 {
		t.Errorf("%d users, want 5 (no duplicates)", n)
	}
}
