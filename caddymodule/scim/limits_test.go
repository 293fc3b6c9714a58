package scim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
)

func searchBody(filter string) string {
	raw, _ := json.Marshal(map[string]any{
		"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:SearchRequest"},
		"filter":  filter,
	})
	return string(raw)
}

func nested(open, leaf, close string, n int) string {
	return strings.Repeat(open, n) + leaf + strings.Repeat(close, n)
}

// TestNestedFiltersAreRefusedBeforeParsing sends the filters that took
// the process down (fatal error: stack overflow in the filter parser) or
// cost seconds and a GiB: each is answered 400 promptly, and the server
// still serves afterwards.
func TestNestedFiltersAreRefusedBeforeParsing(t *testing.T) {
	e := newEnv(t)
	id := e.createUser("acme", "x@acme.com", nil)
	leaf := `userName eq "x@acme.com"`
	for _, c := range []struct {
		name, method, path, body string
		status                   int
		scimType                 string
	}{
		{"the issue's request: 100,000 parentheses, 200 KB", http.MethodPost, "/Users/.search", searchBody(nested("(", leaf, ")", 100_000)), 400, "invalidFilter"},
		{"300,000 deep on Groups", http.MethodPost, "/Groups/.search", searchBody(nested("(", `displayName eq "x"`, ")", 300_000)), 400, "invalidFilter"},
		{"200,000 not(", http.MethodPost, "/Users/.search", searchBody(nested("not(", leaf, ")", 200_000)), 400, "invalidFilter"},
		{"700,000 not( is over the body cap", http.MethodPost, "/Users/.search", searchBody(nested("not(", leaf, ")", 700_000)), 413, ""},
		{"60,000 deep", http.MethodPost, "/Users/.search", searchBody(nested("(", leaf, ")", 60_000)), 400, "invalidFilter"},
		{"17 deep, short", http.MethodPost, "/Users/.search", searchBody(nested("(", leaf, ")", 17)), 400, "invalidFilter"},
		{"brackets count too", http.MethodPost, "/Users/.search", searchBody("emails" + nested("[", `value eq "x"`, "]", 17)), 400, "invalidFilter"},
		{"over 4 KiB without nesting", http.MethodPost, "/Users/.search", searchBody(strings.Repeat(leaf+" or ", 300) + leaf), 400, "invalidFilter"},
		{"query filter, deep", http.MethodGet, "/Users?filter=" + url.QueryEscape(nested("(", leaf, ")", 17)), "", 400, "invalidFilter"},
		{"query filter, long URL", http.MethodGet, "/Groups?filter=" + url.QueryEscape(nested("(", leaf, ")", 5000)), "", 414, ""},
		{"PATCH path", http.MethodPatch, "/Users/" + id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove","path":"emails[` + nested("(", `value eq \"x\"`, ")", 20) + `]"}]}`, 400, "invalidPath"},
		{"PATCH path-less value key", http.MethodPatch, "/Users/" + id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","value":{"emails[` + nested("(", `type eq \"w\"`, ")", 20) + `].value":"a@acme.com"}}]}`, 400, "invalidPath"},
		{"attributes with a filter", http.MethodGet, "/Users?attributes=" + url.QueryEscape("emails[type eq \"w\"]"), "", 400, "invalidValue"},
		{"sortBy in a search", http.MethodPost, "/Users/.search", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"sortBy":"` + strings.Repeat("[", 40) + `"}`, 400, "invalidValue"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var body any
			if c.body != "" {
				body = c.body
			}
			start := time.Now()
			r := e.call("acme", c.method, c.path, body)
			took := time.Since(start)
			t.Logf("%d in %v", r.status, took)
			e.scimError(r, c.status, c.scimType)
			// The issue asks for 100 ms; the bound is generous for a
			// shared machine, and what matters is that no parser ran.
			if took > 2*time.Second {
				t.Errorf("took %v", took)
			}
		})
	}
	r := e.must(http.StatusOK, "acme", http.MethodGet, "/Users?filter="+url.QueryEscape(nested("(", leaf, ")", 16)), nil)
	if num(r.body["totalResults"]) != 1 {
		t.Fatalf("16 deep, the cap: %s", r.raw)
	}
}

// TestStrictInput: requests that were answered 201 and stored something
// other than what was sent are refused, and nothing is written.
func TestStrictInput(t *testing.T) {
	e := newEnv(t)
	id := e.createUser("acme", "kept@acme.com", map[string]any{"title": "Engineer"})
	user := func(fields string) string {
		return `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],` + fields + `}`
	}
	for _, c := range []struct {
		name, method, path, contentType, body string
		status                                int
		scimType                              string
	}{
		{"trailing garbage", "POST", "/Users", "", user(`"userName":"a@acme.com"`) + `garbage`, 400, "invalidSyntax"},
		{"a second value", "POST", "/Users", "", user(`"userName":"a@acme.com"`) + `{}`, 400, "invalidSyntax"},
		{"invalid UTF-8", "POST", "/Users", "", user(`"userName":"a@acme.com","title":"` + "\xff\xfe" + `"`), 400, "invalidSyntax"},
		{"lone surrogate escape", "POST", "/Users", "", user(`"userName":"a@acme.com","title":"\ud800"`), 400, "invalidSyntax"},
		{"duplicate key", "POST", "/Users", "", user(`"userName":"a@acme.com","userName":"b@acme.com"`), 400, "invalidSyntax"},
		{"duplicate key in another case", "POST", "/Users", "", user(`"userName":"a@acme.com","USERNAME":"b@acme.com"`), 400, "invalidSyntax"},
		{"duplicate key in a nested object", "POST", "/Users", "", user(`"userName":"a@acme.com","name":{"givenName":"A","givenName":"B"}`), 400, "invalidSyntax"},
		{"nested 40 deep", "POST", "/Users", "", user(`"userName":"a@acme.com","x":` + nested("[", "1", "]", 40)), 400, "invalidSyntax"},
		{"NUL in userName", "POST", "/Users", "", user(`"userName":"a\u0000@acme.com"`), 400, "invalidValue"},
		{"CR LF in userName", "POST", "/Users", "", user(`"userName":"a\r\nX-Injected: 1@acme.com"`), 400, "invalidValue"},
		{"control character in a login name", "POST", "/Users", "", user(`"userName":"alice\u0007"`), 400, "invalidValue"},
		{"bidi override in userName", "POST", "/Users", "", user(`"userName":"a\u202e@acme.com"`), 400, "invalidValue"},
		{"10,000 characters in userName", "POST", "/Users", "", user(`"userName":"` + strings.Repeat("a", 10_000) + `@acme.com"`), 400, "invalidValue"},
		{"userName with @ that is not an address", "POST", "/Users", "", user(`"userName":"a@b@acme.com"`), 400, "invalidValue"},
		{"userName with a space", "POST", "/Users", "", user(`"userName":"alice smith@acme.com"`), 400, "invalidValue"},
		{"email that is not an address", "POST", "/Users", "", user(`"userName":"a@acme.com","emails":[{"value":"not an address"}]`), 400, "invalidValue"},
		{"text/plain", "POST", "/Users", "text/plain", user(`"userName":"a@acme.com"`), 415, ""},
		{"no Content-Type", "POST", "/Users", "-", user(`"userName":"a@acme.com"`), 415, ""},
		{"another charset", "POST", "/Users", "application/scim+json; charset=iso-8859-1", user(`"userName":"a@acme.com"`), 415, ""},
		{"empty body", "POST", "/Users", "", "", 400, "invalidSyntax"},
		{"PUT with trailing garbage", "PUT", "/Users/" + id, "", user(`"userName":"kept@acme.com","title":"Boss"`) + "]", 400, "invalidSyntax"},
		{"PATCH with a duplicate key", "PATCH", "/Users/" + id, "", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"title","value":"Boss","value":"CEO"}]}`, 400, "invalidSyntax"},
		{"repeated query parameter", "GET", "/Users?filter=" + url.QueryEscape(`userName eq "a"`) + "&filter=x", "", "", 400, "invalidSyntax"},
		{"GET with a body", "GET", "/Users", "", `{}`, 400, "invalidSyntax"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before, _ := e.store.CountUsers("acme")
			was, _ := e.store.GetUser("acme", id)
			r := e.send("acme", c.method, c.path, c.contentType, c.body)
			e.scimError(r, c.status, c.scimType)
			after, _ := e.store.CountUsers("acme")
			now, _ := e.store.GetUser("acme", id)
			if after != before || !reflect.DeepEqual(was, now) {
				t.Fatalf("refused, but written: %d → %d users\n%+v\n%+v", before, after, was, now)
			}
		})
	}
	// Plain JSON is fine (RFC 7644 §3.1), and so is a login name
	// without @, as Microsoft's examples send.
	r := e.send("acme", "POST", "/Users", "application/json; charset=utf-8", user(`"userName":"Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1"`))
	if r.status != http.StatusCreated {
		t.Fatalf("application/json: %d %s", r.status, r.raw)
	}
}

// send is call with an explicit Content-Type ("" the SCIM one, "-" none)
// and a raw body.
func (e *env) send(org, method, path, contentType, body string) resp {
	e.t.Helper()
	req, err := http.NewRequest(method, e.http.URL+testPrefix+"/scim/"+org+"/v2"+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if body == "" {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	req.Header.Set("Authorization", "Bearer "+e.tokens[org])
	switch contentType {
	case "":
		req.Header.Set("Content-Type", "application/scim+json")
	case "-":
	default:
		req.Header.Set("Content-Type", contentType)
	}
	return e.do(req)
}

// TestOverLongURLGetsSCIMError: an over-long URL or header fields that
// reach the handler are answered with SCIM error JSON (Go's server
// answers 431 itself only past its header limit, 1 MiB by default,
// before any handler runs).
func TestOverLongURLGetsSCIMError(t *testing.T) {
	e := newEnv(t)
	r := e.call("acme", http.MethodGet, "/Users?startIndex=1&x="+strings.Repeat("a", 9000), nil)
	e.scimError(r, http.StatusRequestURITooLong, "")
	r = e.call("acme", http.MethodGet, "/Users/"+strings.Repeat("a", 9000), nil)
	e.scimError(r, http.StatusRequestURITooLong, "")
	req, err := http.NewRequest(http.MethodGet, e.http.URL+testPrefix+"/scim/acme/v2/Users", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.tokens["acme"])
	req.Header.Set("X-Padding", strings.Repeat("p", 20<<10))
	e.scimError(e.do(req), http.StatusRequestHeaderFieldsTooLarge, "")
}

// TestAttributeLimits: each cap refuses the write that would exceed it,
// POST, PUT and PATCH alike, and leaves the store as it was.
func TestAttributeLimits(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Limits = Limits{MaxGroupMembers: 3, MaxUsers: 6, MaxGroups: 2}
	})
	id := e.createUser("acme", "pat@acme.com", map[string]any{"title": "Engineer"})
	var members []string
	for i := range 3 {
		members = append(members, e.createUser("acme", fmt.Sprintf("m%d@acme.com", i), nil))
	}
	gid := e.createGroup("acme", "Admins", members...)
	extra := e.createUser("acme", "extra@acme.com", nil)
	big := strings.Repeat("x", DefaultMaxStringLength+1)
	emails := make([]any, DefaultMaxMultiValued+1)
	for i := range emails {
		emails[i] = map[string]any{"value": fmt.Sprintf("pat%d@acme.com", i)}
	}
	phones := make([]any, DefaultMaxMultiValued+1)
	for i := range phones {
		phones[i] = map[string]any{"value": fmt.Sprint(i)}
	}
	// 80 addresses of 900 bytes: every string and list within its cap,
	// the whole user over 64 KiB.
	addresses := make([]any, 80)
	for i := range addresses {
		addresses[i] = map[string]any{"formatted": fmt.Sprint(i) + strings.Repeat("y", 900)}
	}
	user := func(extra map[string]any) map[string]any {
		u := map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": "pat@acme.com"}
		for k, v := range extra {
			u[k] = v
		}
		return u
	}
	for _, c := range []struct {
		name         string
		method, path string
		body         any
		status       int
	}{
		{"a 3.9 MB title is refused (and 1 KiB + 1 too)", "PUT", "/Users/" + id, user(map[string]any{"title": big}), 400},
		{"a long title through PATCH", "PATCH", "/Users/" + id, patchOp(map[string]any{"op": "replace", "path": "title", "value": big}), 400},
		{"a long displayName", "POST", "/Users", user(map[string]any{"userName": "new@acme.com", "displayName": big}), 400},
		{"a long externalId", "PATCH", "/Users/" + id, patchOp(map[string]any{"op": "replace", "path": "externalId", "value": big}), 400},
		{"101 emails", "PUT", "/Users/" + id, user(map[string]any{"emails": emails}), 400},
		{"101 phone numbers", "PUT", "/Users/" + id, user(map[string]any{"phoneNumbers": phones}), 400},
		{"a user over 64 KiB", "PUT", "/Users/" + id, user(map[string]any{"addresses": addresses}), 400},
		{"a user pushed over 64 KiB by PATCH", "PATCH", "/Users/" + id, patchOp(map[string]any{"op": "add", "path": "addresses", "value": addresses}), 400},
		{"a long email address", "PATCH", "/Users/" + id, patchOp(map[string]any{"op": "add", "path": "emails", "value": []any{map[string]any{"value": strings.Repeat("a", 250) + "@acme.com"}}}), 400},
		{"a fourth member", "PATCH", "/Groups/" + gid, patchOp(map[string]any{"op": "add", "path": "members", "value": []any{map[string]any{"value": extra}}}), 400},
		{"a fourth member by PUT", "PUT", "/Groups/" + gid, map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": "Admins", "members": []any{
			map[string]any{"value": members[0]}, map[string]any{"value": members[1]}, map[string]any{"value": members[2]}, map[string]any{"value": extra}}}, 400},
		{"a group with four members", "POST", "/Groups", map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": "Many", "members": []any{
			map[string]any{"value": members[0]}, map[string]any{"value": members[1]}, map[string]any{"value": members[2]}, map[string]any{"value": extra}}}, 400},
		{"a long group name", "PATCH", "/Groups/" + gid, patchOp(map[string]any{"op": "replace", "path": "displayName", "value": big}), 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			u0, _ := e.store.GetUser("acme", id)
			g0, _ := e.store.GetGroup("acme", gid)
			n0, _ := e.store.CountUsers("acme")
			r := e.call("acme", c.method, c.path, c.body)
			e.scimError(r, c.status, "invalidValue")
			u1, _ := e.store.GetUser("acme", id)
			g1, _ := e.store.GetGroup("acme", gid)
			n1, _ := e.store.CountUsers("acme")
			if !reflect.DeepEqual(u0, u1) || !reflect.DeepEqual(g0, g1) || n0 != n1 {
				t.Fatalf("refused, but written:\n%+v\n%+v\n%+v\n%+v", u0, u1, g0, g1)
			}
		})
	}

	// Per-organization totals: 5 users so far, 6 allowed; 1 group of 2.
	e.createUser("acme", "sixth@acme.com", nil)
	r := e.call("acme", http.MethodPost, "/Users", map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": "seventh@acme.com"})
	e.scimError(r, http.StatusForbidden, "")
	if n, _ := e.store.CountUsers("acme"); n != 6 {
		t.Fatalf("%d users", n)
	}
	e.createUser("globex", "other-org@globex.com", nil) // another org's budget
	e.createGroup("acme", "Second")
	r = e.call("acme", http.MethodPost, "/Groups", map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": "Third"})
	e.scimError(r, http.StatusForbidden, "")
	// Removing members is always possible, and so is adding up to the cap.
	e.must(http.StatusOK, "acme", http.MethodPatch, "/Groups/"+gid, patchOp(map[string]any{"op": "remove", "path": `members[value eq "` + members[0] + `"]`}))
	e.must(http.StatusOK, "acme", http.MethodPatch, "/Groups/"+gid, patchOp(map[string]any{"op": "add", "path": "members", "value": []any{map[string]any{"value": extra}}}))
}

// TestListPagesAreCappedInBytes: a page stops once it holds max_page_size
// of resources and says so in itemsPerPage; following startIndex reaches
// every resource.
func TestListPagesAreCappedInBytes(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Limits = Limits{MaxPageBytes: 8 << 10} })
	// About 3 KiB each: two or three fit in 8 KiB.
	var ids []string
	for i := range 7 {
		ids = append(ids, e.createUser("acme", fmt.Sprintf("u%d@acme.com", i), map[string]any{
			"title": strings.Repeat("t", 1000), "nickName": strings.Repeat("n", 1000), "profileUrl": "https://x.example/" + strings.Repeat("p", 900),
		}))
	}
	seen := map[string]bool{}
	pages := 0
	for start := 1; start <= len(ids); pages++ {
		r := e.must(http.StatusOK, "acme", http.MethodGet, fmt.Sprintf("/Users?startIndex=%d&count=100", start), nil)
		res := resources(t, r)
		if len(res) == 0 || len(res) > 3 || num(r.body["itemsPerPage"]) != len(res) || num(r.body["totalResults"]) != len(ids) {
			t.Fatalf("page at %d: %d resources, itemsPerPage %v, totalResults %v", start, len(res), r.body["itemsPerPage"], r.body["totalResults"])
		}
		if len(r.raw) > 12<<10 {
			t.Fatalf("page of %d bytes", len(r.raw))
		}
		for _, u := range res {
			seen[u["id"].(string)] = true
		}
		start += len(res)
	}
	if len(seen) != len(ids) || pages < 3 {
		t.Fatalf("%d pages reached %d of %d users", pages, len(seen), len(ids))
	}
	// A filter's page is capped the same way.
	f := url.QueryEscape(`userName eq "u0@acme.com" or userName eq "u1@acme.com" or userName eq "u2@acme.com" or userName eq "u3@acme.com"`)
	r := e.must(http.StatusOK, "acme", http.MethodGet, "/Users?filter="+f, nil)
	if n := len(resources(t, r)); n == 0 || n > 3 || num(r.body["totalResults"]) != 4 || num(r.body["itemsPerPage"]) != n {
		t.Fatalf("filtered page: %d resources: itemsPerPage %v totalResults %v", n, r.body["itemsPerPage"], r.body["totalResults"])
	}
}

// TestLegacyOversizedUsersDoNotAmplify: users stored before the limits
// (the 3.9 MB titles) still list one page at a time within the
// page cap, not count × their size.
func TestLegacyOversizedUsersDoNotAmplify(t *testing.T) {
	e := newEnv(t)
	for i := range 5 {
		u := &store.User{OrgID: "acme", UserName: fmt.Sprintf("old%d@acme.com", i), Active: true, Source: store.SourceSCIM,
			SCIM: map[string]any{"title": strings.Repeat("x", DefaultMaxPageBytes*3/10)}}
		if err := e.store.CreateUser(u); err != nil {
			t.Fatal(err)
		}
	}
	r := e.must(http.StatusOK, "acme", http.MethodGet, "/Users?count=100", nil)
	if n := len(resources(t, r)); n != 3 || num(r.body["itemsPerPage"]) != 3 {
		t.Fatalf("%d users on a page of 3/10 of its size each (itemsPerPage %v)", n, r.body["itemsPerPage"])
	}
}

// TestAddressesInAnotherOrganizationsDomain are refused, as for local
// accounts; addresses in unverified domains are not.
func TestAddressesInAnotherOrganizationsDomain(t *testing.T) {
	e := newEnv(t)
	if err := e.store.AddDomain(&store.Domain{OrgID: "globex", Name: "globex.com", Status: store.DomainVerified}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.AddDomain(&store.Domain{OrgID: "acme", Name: "acme.com", Status: store.DomainVerified}); err != nil {
		t.Fatal(err)
	}
	id := e.createUser("acme", "pat@acme.com", map[string]any{"emails": []any{map[string]any{"value": "pat@home.example", "type": "home"}}})
	user := func(a map[string]any) map[string]any {
		a["schemas"] = []string{"urn:ietf:params:scim:schemas:core:2.0:User"}
		return a
	}
	for _, c := range []struct {
		name, method, path string
		body               any
	}{
		{"userName", "POST", "/Users", user(map[string]any{"userName": "ceo@globex.com"})},
		{"userName in upper case", "POST", "/Users", user(map[string]any{"userName": "CEO@GLOBEX.COM"})},
		{"an email", "POST", "/Users", user(map[string]any{"userName": "x@acme.com", "emails": []any{map[string]any{"value": "ceo@globex.com"}}})},
		{"a login name with such an email", "POST", "/Users", user(map[string]any{"userName": "ceo", "emails": []any{map[string]any{"value": "ceo@globex.com", "primary": true}}})},
		{"PUT", "PUT", "/Users/" + id, user(map[string]any{"userName": "ceo@globex.com"})},
		{"PATCH userName", "PATCH", "/Users/" + id, patchOp(map[string]any{"op": "replace", "path": "userName", "value": "ceo@globex.com"})},
		{"PATCH an email", "PATCH", "/Users/" + id, patchOp(map[string]any{"op": "replace", "path": `emails[type eq "work"].value`, "value": "ceo@globex.com"})},
	} {
		t.Run(c.name, func(t *testing.T) {
			u0, _ := e.store.GetUser("acme", id)
			n0, _ := e.store.CountUsers("acme")
			r := e.call("acme", c.method, c.path, c.body)
			e.scimError(r, http.StatusBadRequest, "invalidValue")
			if !strings.Contains(r.body["detail"].(string), "globex.com is verified by another organization") {
				t.Errorf("detail: %s", r.raw)
			}
			u1, _ := e.store.GetUser("acme", id)
			n1, _ := e.store.CountUsers("acme")
			if !reflect.DeepEqual(u0, u1) || n0 != n1 {
				t.Fatal("written")
			}
		})
	}
	// The organization's own domain works, and so does globex's for globex.
	e.must(http.StatusOK, "acme", http.MethodPatch, "/Users/"+id, patchOp(map[string]any{"op": "replace", "path": "userName", "value": "pat.doe@acme.com"}))
	e.createUser("globex", "ceo@globex.com", nil)
}

// TestFiltersSelectingTooManyAreRefused: a filter whose candidates are
// more than the server reads for one request is refused with tooMany
// (RFC 7644 §3.12) before any of them is read, where before every match
// was loaded at once (a tenant's 100,000 users sharing one address, each
// up to max_resource_size, were one GET away from the whole heap).
func TestFiltersSelectingTooManyAreRefused(t *testing.T) {
	e := newEnv(t)
	var batch []*store.User
	for i := range mostUserCandidates + 1 {
		batch = append(batch, &store.User{OrgID: "acme", UserName: fmt.Sprintf("u%d@acme.com", i), Active: true, Source: store.SourceSCIM,
			Emails: []store.Email{{Value: "shared@acme.com", Type: "other"}}})
		if len(batch) == 1000 || i == mostUserCandidates {
			if err := e.store.CreateUsers(batch); err != nil {
				t.Fatal(err)
			}
			batch = nil
		}
	}
	r := e.call("acme", http.MethodGet, "/Users?filter="+url.QueryEscape(`emails.value eq "shared@acme.com"`), nil)
	e.scimError(r, http.StatusBadRequest, "tooMany")
	// Narrowed down by an "and" with an index, it is fine.
	r = e.must(http.StatusOK, "acme", http.MethodGet, "/Users?filter="+url.QueryEscape(`userName eq "u7@acme.com" and emails.value eq "shared@acme.com"`), nil)
	if num(r.body["totalResults"]) != 1 {
		t.Fatalf("narrowed: %s", r.raw)
	}

	// Groups: a user in more groups than a filter may read.
	uid := e.createUser("acme", "member@acme.com", nil)
	for i := range mostGroupCandidates + 1 {
		if err := e.store.CreateGroup(&store.Group{OrgID: "acme", DisplayName: fmt.Sprintf("g%d", i), Members: []string{uid}}); err != nil {
			t.Fatal(err)
		}
	}
	r = e.call("acme", http.MethodGet, "/Groups?filter="+url.QueryEscape(`members[value eq "`+uid+`"]`), nil)
	e.scimError(r, http.StatusBadRequest, "tooMany")
	// Entra ID's membership probe names the group, and still works.
	gid := e.createGroup("acme", "probe", uid)
	r = e.must(http.StatusOK, "acme", http.MethodGet, "/Groups?excludedAttributes=members&filter="+url.QueryEscape(`id eq "`+gid+`" and members[value eq "`+uid+`"]`), nil)
	if num(r.body["totalResults"]) != 1 {
		t.Fatalf("probe: %s", r.raw)
	}
}

// TestStoredBytesLimit: once an organization's users and groups fill
// max_stored_bytes, a create, PUT or PATCH that would grow them gets 403
// and writes nothing; PATCHes that shrink and deletions still work, and
// other organizations keep their own budget.
func TestStoredBytesLimit(t *testing.T) {
	if err := (Limits{MaxStoredBytes: -1}).Validate(); err == nil || !strings.Contains(err.Error(), "max_stored_bytes") {
		t.Fatalf("negative max_stored_bytes: %v", err)
	}
	if d := (Limits{}).WithDefaults().MaxStoredBytes; d != 1<<30 {
		t.Fatalf("default max_stored_bytes %d", d)
	}
	const limit = 16 << 10
	e := newEnv(t, func(c *Config) { c.Limits = Limits{MaxStoredBytes: limit} })
	user := func(name string, extra map[string]any) map[string]any {
		u := map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": name}
		for k, v := range extra {
			u[k] = v
		}
		return u
	}
	title := map[string]any{"title": strings.Repeat("t", 1000)}
	gid := e.createGroup("acme", "Staff")
	var ids []string
	var refused resp
	for i := 0; ; i++ {
		r := e.call("acme", http.MethodPost, "/Users", user(fmt.Sprintf("u%d@acme.com", i), title))
		if r.status != http.StatusCreated {
			refused = r
			break
		}
		ids = append(ids, r.body["id"].(string))
		if i > 50 {
			t.Fatal("the limit never applied")
		}
	}
	e.scimError(refused, http.StatusForbidden, "")
	if !strings.Contains(refused.body["detail"].(string), "storage limit") {
		t.Fatalf("detail: %s", refused.raw)
	}
	if len(ids) < 5 {
		t.Fatalf("only %d users fit in %d bytes", len(ids), limit)
	}
	used, err := e.store.StoredBytes("acme")
	if err != nil || used > limit || used < limit-4<<10 {
		t.Fatalf("%d bytes stored (%v)", used, err)
	}

	grown := strings.Repeat("g", 1000)
	for _, c := range []struct {
		name         string
		method, path string
		body         any
	}{
		{"another user", http.MethodPost, "/Users", user("more@acme.com", nil)},
		{"a larger user by PUT", http.MethodPut, "/Users/" + ids[0], user("u0@acme.com", map[string]any{"title": grown, "nickName": grown})},
		{"a larger user by PATCH", http.MethodPatch, "/Users/" + ids[0], patchOp(map[string]any{"op": "add", "path": "nickName", "value": grown})},
		{"a new group", http.MethodPost, "/Groups", map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": grown}},
		{"members added", http.MethodPatch, "/Groups/" + gid, patchOp(map[string]any{"op": "add", "path": "members", "value": []any{
			map[string]any{"value": ids[0]}, map[string]any{"value": ids[1]}, map[string]any{"value": ids[2]}, map[string]any{"value": ids[3]}}})},
	} {
		t.Run(c.name, func(t *testing.T) {
			u0, _ := e.store.GetUser("acme", ids[0])
			g0, _ := e.store.GetGroup("acme", gid)
			before, _ := e.store.StoredBytes("acme")
			r := e.call("acme", c.method, c.path, c.body)
			e.scimError(r, http.StatusForbidden, "")
			u1, _ := e.store.GetUser("acme", ids[0])
			g1, _ := e.store.GetGroup("acme", gid)
			after, _ := e.store.StoredBytes("acme")
			if !reflect.DeepEqual(u0, u1) || !reflect.DeepEqual(g0, g1) || before != after {
				t.Fatalf("refused, but written: %d bytes became %d\n%+v\n%+v", before, after, g0, g1)
			}
		})
	}
	if n, _ := e.store.CountUsers("acme"); n != len(ids) {
		t.Fatalf("%d users", n)
	}
	if _, err := e.store.UserByUserName("acme", "more@acme.com"); err == nil {
		t.Fatal("refused user stored")
	}

	// Another organization has a budget of its own.
	e.createUser("globex", "pat@globex.com", title)

	// Over the limit (a user written by other means than SCIM), a
	// deactivation still goes through, although "false" is longer than
	// "true"; one that also grows the user does not.
	if err := e.store.CreateUser(&store.User{OrgID: "acme", UserName: "filler@acme.com", SCIM: map[string]any{"title": strings.Repeat("f", 8<<10)}}); err != nil {
		t.Fatal(err)
	}
	e.must(http.StatusOK, "acme", http.MethodPatch, "/Users/"+ids[3], patchOp(map[string]any{"op": "replace", "path": "active", "value": false}))
	if u, _ := e.store.GetUser("acme", ids[3]); u.Active {
		t.Fatal("deactivation over the limit not stored")
	}
	u4, _ := e.store.GetUser("acme", ids[4])
	e.scimError(e.call("acme", http.MethodPut, "/Users/"+ids[4], user("u4@acme.com", map[string]any{"active": false, "title": grown, "nickName": grown})), http.StatusForbidden, "")
	if u, _ := e.store.GetUser("acme", ids[4]); !reflect.DeepEqual(u, u4) {
		t.Fatal("refused deactivation with growth stored")
	}

	// Shrinking and deleting work over the limit, and make room again.
	e.must(http.StatusOK, "acme", http.MethodPatch, "/Users/"+ids[0], patchOp(map[string]any{"op": "remove", "path": "title"}))
	e.must(http.StatusNoContent, "acme", http.MethodDelete, "/Users/"+ids[1], nil)
	e.must(http.StatusNoContent, "acme", http.MethodDelete, "/Users/"+ids[2], nil)
	if filler, err := e.store.UserByUserName("acme", "filler@acme.com"); err != nil || e.store.DeleteUser("acme", filler.ID) != nil {
		t.Fatal(err)
	}
	e.must(http.StatusOK, "acme", http.MethodPatch, "/Groups/"+gid, patchOp(map[string]any{"op": "add", "path": "members", "value": []any{map[string]any{"value": ids[0]}}}))
	e.createUser("acme", "more@acme.com", nil)
}
