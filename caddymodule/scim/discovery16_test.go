package scim

import (
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
)

// subNames returns the sub-attribute names of a published attribute.
func subNames(t *testing.T, schemaDoc map[string]any, attr string) (map[string]any, []string) {
	t.Helper()
	attrs, _ := schemaDoc["attributes"].([]any)
	for _, a := range attrs {
		m, _ := a.(map[string]any)
		if m["name"] == attr {
			var names []string
			subs, _ := m["subAttributes"].([]any)
			for _, s := range subs {
				names = append(names, s.(map[string]any)["name"].(string))
			}
			return m, names
		}
	}
	t.Fatalf("schema %v has no attribute %s", schemaDoc["id"], attr)
	return nil, nil
}

func subAttr(t *testing.T, attr map[string]any, name string) map[string]any {
	t.Helper()
	subs, _ := attr["subAttributes"].([]any)
	for _, s := range subs {
		if m := s.(map[string]any); m["name"] == name {
			return m
		}
	}
	t.Fatalf("no sub-attribute %s in %v", name, attr["name"])
	return nil
}

// The discovery documents advertise only what the server does.
func TestDiscoveryIsTruthful(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Limits.MaxRequestBytes = 4 << 20 })
	base := testBase + testPrefix + "/scim/acme/v2"

	spc := e.must(http.StatusOK, "acme", http.MethodGet, "/ServiceProviderConfig", nil).body
	bulk, _ := spc["bulk"].(map[string]any)
	if bulk["supported"] != false || num(bulk["maxPayloadSize"]) != 4<<20 || num(bulk["maxOperations"]) != 0 {
		t.Errorf("bulk: %v", bulk)
	}
	if spc["documentationUri"] != DocumentationURI || DocumentationURI == "" {
		t.Errorf("documentationUri: %v", spc["documentationUri"])
	}
	if meta, _ := spc["meta"].(map[string]any); meta["resourceType"] != "ServiceProviderConfig" || meta["location"] != base+"/ServiceProviderConfig" {
		t.Errorf("ServiceProviderConfig meta: %v", spc["meta"])
	}
	for _, etag := range []string{"etag", "sort", "changePassword"} {
		if m, _ := spc[etag].(map[string]any); m["supported"] != false {
			t.Errorf("%s: %v", etag, m)
		}
	}

	for _, rt := range resources(t, e.must(http.StatusOK, "acme", http.MethodGet, "/ResourceTypes", nil)) {
		if meta, _ := rt["meta"].(map[string]any); meta["resourceType"] != "ResourceType" || meta["location"] != base+"/ResourceTypes/"+rt["id"].(string) {
			t.Errorf("ResourceType meta: %v", rt)
		}
	}

	sc := e.must(http.StatusOK, "acme", http.MethodGet, "/Schemas", nil)
	docs := map[string]map[string]any{}
	for _, s := range resources(t, sc) {
		docs[s["id"].(string)] = s
		if meta, _ := s["meta"].(map[string]any); meta["resourceType"] != "Schema" || meta["location"] != base+"/Schemas/"+s["id"].(string) {
			t.Errorf("Schema meta: %v", s["meta"])
		}
	}
	if num(sc.body["totalResults"]) != 3 || len(docs) != 3 {
		t.Fatalf("Schemas: %s", sc.raw)
	}
	members, names := subNames(t, docs["urn:ietf:params:scim:schemas:core:2.0:Group"], "members")
	if slices.Contains(names, "display") {
		t.Errorf("members advertises display: %v", names)
	}
	if v := subAttr(t, members, "type")["canonicalValues"]; !slicesEqualAny(v, "User") {
		t.Errorf("members.type canonicalValues: %v", v)
	}
	if v := subAttr(t, members, "$ref")["referenceTypes"]; !slicesEqualAny(v, "User") {
		t.Errorf("members.$ref referenceTypes: %v", v)
	}
	dn, _ := subNames(t, docs["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName")
	if dn["uniqueness"] != "none" {
		t.Errorf("group displayName uniqueness: %v", dn["uniqueness"])
	}
	if _, names := subNames(t, docs[enterpriseURN], "manager"); slices.Contains(names, "displayName") {
		t.Errorf("manager advertises displayName: %v", names)
	}
	groups, names := subNames(t, docs["urn:ietf:params:scim:schemas:core:2.0:User"], "groups")
	if slices.Contains(names, "display") || groups["mutability"] != "readOnly" {
		t.Errorf("user groups: %v", groups)
	}
	// One schema by id, with meta; the validation schemas are untouched
	// (a group with members' display is still accepted).
	one := e.must(http.StatusOK, "acme", http.MethodGet, "/Schemas/urn:ietf:params:scim:schemas:core:2.0:Group", nil).body
	if _, names := subNames(t, one, "members"); slices.Contains(names, "display") || one["meta"] == nil {
		t.Errorf("one schema: %v", one)
	}
	e.scimError(e.call("acme", http.MethodGet, "/Schemas/urn:nosuch", nil), http.StatusNotFound, "")

	// A filter on a discovery endpoint is refused, not ignored
	// (RFC 7644 §4).
	for _, p := range []string{"/Schemas", "/ResourceTypes", "/ServiceProviderConfig"} {
		e.scimError(e.call("acme", http.MethodGet, p+"?filter="+url.QueryEscape(`id eq "urn:ietf:params:scim:schemas:core:2.0:User"`), nil), http.StatusForbidden, "")
	}
	e.scimError(e.call("acme", http.MethodPost, "/Schemas", map[string]any{}), http.StatusMethodNotAllowed, "")
}

func slicesEqualAny(v any, want ...string) bool {
	list, _ := v.([]any)
	if len(list) != len(want) {
		return false
	}
	for i, w := range want {
		if list[i] != w {
			return false
		}
	}
	return true
}

// A user's groups are returned (read-only); members come back with the
// $ref and type that discovery advertises.
func TestUserGroupsReturned(t *testing.T) {
	e := newEnv(t)
	kim := e.createUser("acme", "kim@acme.com", nil)
	lee := e.createUser("acme", "lee@acme.com", nil)
	admins := e.createGroup("acme", "Admins", kim)
	staff := e.createGroup("acme", "Staff", kim, lee)

	u := e.must(http.StatusOK, "acme", http.MethodGet, "/Users/"+kim, nil).body
	var got []string
	for _, g := range u["groups"].([]any) {
		m := g.(map[string]any)
		if m["$ref"] != testBase+testPrefix+"/scim/acme/v2/Groups/"+m["value"].(string) || m["type"] != "direct" {
			t.Errorf("group entry: %v", m)
		}
		got = append(got, m["value"].(string))
	}
	want := []string{admins, staff}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("groups of kim: %v, want %v", got, want)
	}
	if u := e.must(http.StatusOK, "acme", http.MethodGet, "/Users/"+lee+"?excludedAttributes=groups", nil).body; u["groups"] != nil {
		t.Errorf("excludedAttributes=groups: %v", u)
	}
	// In lists too, and gone once the membership is.
	r := e.must(http.StatusOK, "acme", http.MethodGet, "/Users?filter="+url.QueryEscape(`userName eq "lee@acme.com"`), nil)
	if g, _ := resources(t, r)[0]["groups"].([]any); len(g) != 1 || g[0].(map[string]any)["value"] != staff {
		t.Errorf("listed groups of lee: %s", r.raw)
	}
	e.must(http.StatusNoContent, "acme", http.MethodDelete, "/Groups/"+staff, nil)
	if u := e.must(http.StatusOK, "acme", http.MethodGet, "/Users/"+lee, nil).body; u["groups"] != nil {
		t.Errorf("groups after delete: %v", u["groups"])
	}
	// The IdP cannot set them.
	put := map[string]any{
		"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": "lee@acme.com", "active": true,
		"groups": []any{map[string]any{"value": admins}},
	}
	e.call("acme", http.MethodPut, "/Users/"+lee, put)
	if is, err := e.store.IsMember("acme", admins, lee); err != nil || is {
		t.Errorf("PUT groups made lee a member: %v %v", is, err)
	}
}

// Okta's spec test reads Resources[0] of count=1&startIndex=1 and wants
// name.givenName, name.familyName and emails[0].value, whichever user
// sorts first: users that sign-in or the operator created get a derived
// name and email.
func TestOktaSpecTestFirstUser(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	// Sorts first (list order is by id): a SAML-created user whose
	// assertion gave only a display name.
	if err := e.store.CreateUser(&store.User{ID: "00000000-0000-4000-8000-000000000001", OrgID: "acme", UserName: "Mary.Ann.Lee@acme.com",
		DisplayName: "Mary Ann Lee", Active: true, Source: store.SourceSAML, Created: now, Updated: now}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.CreateUser(&store.User{ID: "00000000-0000-4000-8000-000000000002", OrgID: "acme", UserName: "kim@acme.com",
		GivenName: "Kim", FamilyName: "Park", Active: true, Source: store.SourceLocal, Created: now, Updated: now}); err != nil {
		t.Fatal(err)
	}
	scimUser := e.createUser("acme", "bare@acme.com", nil)

	r := e.must(http.StatusOK, "acme", http.MethodGet, "/Users?count=1&startIndex=1", nil)
	res := resources(t, r)
	if len(res) != 1 || num(r.body["itemsPerPage"]) != 1 || num(r.body["totalResults"]) != 3 {
		t.Fatalf("page: %s", r.raw)
	}
	first := res[0]
	name, _ := first["name"].(map[string]any)
	emails, _ := first["emails"].([]any)
	if first["id"] != "00000000-0000-4000-8000-000000000001" || name["givenName"] != "Mary Ann" || name["familyName"] != "Lee" ||
		name["formatted"] != "Mary Ann Lee" || len(emails) != 1 || emails[0].(map[string]any)["value"] != "Mary.Ann.Lee@acme.com" {
		t.Fatalf("first user: %s", r.raw)
	}
	second := resources(t, e.must(http.StatusOK, "acme", http.MethodGet, "/Users?count=1&startIndex=2", nil))[0]
	if n, _ := second["name"].(map[string]any); n["givenName"] != "Kim" || n["familyName"] != "Park" {
		t.Fatalf("second user: %v", second)
	}
	// Derived values are returned, never stored.
	if u, err := e.store.GetUser("acme", "00000000-0000-4000-8000-000000000001"); err != nil || u.GivenName != "" || len(u.Emails) != 0 {
		t.Fatalf("stored: %+v %v", u, err)
	}
	// A provisioned user is returned as the IdP sent it.
	if u := e.must(http.StatusOK, "acme", http.MethodGet, "/Users/"+scimUser, nil).body; u["name"] != nil || u["emails"] != nil {
		t.Errorf("provisioned user got derived attributes: %v", u)
	}
}

// Group displayNames have uniqueness "none" as published: Entra ID and
// AD-sourced Okta groups can share names. externalId stays unique.
func TestGroupsSharingANameThroughSCIM(t *testing.T) {
	e := newEnv(t)
	post := func(name, ext string) resp {
		body := map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": name}
		if ext != "" {
			body["externalId"] = ext
		}
		return e.call("acme", http.MethodPost, "/Groups", body)
	}
	a := post("Sales", "g-1")
	b := post("SALES", "g-2")
	if a.status != http.StatusCreated || b.status != http.StatusCreated {
		t.Fatalf("shared name: %s / %s", a.raw, b.raw)
	}
	e.scimError(post("Other", "g-1"), http.StatusConflict, "uniqueness")
	r := e.must(http.StatusOK, "acme", http.MethodGet, "/Groups?filter="+url.QueryEscape(`displayName eq "sales"`), nil)
	var got []string
	for _, g := range resources(t, r) {
		got = append(got, g["id"].(string))
	}
	want := []string{a.body["id"].(string), b.body["id"].(string)}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("displayName eq: %v, want %v", got, want)
	}
	// A rename onto a taken name is accepted too.
	c := e.createGroup("acme", "Ops")
	e.must(http.StatusOK, "acme", http.MethodPatch, "/Groups/"+c, patchOp(map[string]any{"op": "replace", "path": "displayName", "value": "Sales"}))
	r = e.must(http.StatusOK, "acme", http.MethodGet, "/Groups?filter="+url.QueryEscape(`displayName eq "Sales"`)+"&excludedAttributes=members", nil)
	if num(r.body["totalResults"]) != 3 {
		t.Fatalf("after rename: %s", r.raw)
	}
}

// When a pushed group makes the admin group's name shared (and no group
// has the mapping's ID), the organization's audit trail says so.
func TestSharedAdminGroupNameAudited(t *testing.T) {
	e := newEnv(t)
	if _, err := e.store.UpdateOrg("acme", func(o *store.Org) error {
		o.AdminGroup = store.GroupMapping{Name: "Gateway Admins", ID: "00gAdmins"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	warned := func() bool {
		events, err := e.store.ListAudit("acme", 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range events {
			if ev.Action == "scim.group.admin_name_shared" {
				return true
			}
		}
		return false
	}
	e.createGroup("acme", "gateway admins")
	e.createGroup("acme", "Other")
	if warned() {
		t.Fatal("warned with one group of the name")
	}
	other := e.createGroup("acme", "Ops")
	e.must(http.StatusOK, "acme", http.MethodPatch, "/Groups/"+other, patchOp(map[string]any{"op": "replace", "path": "displayName", "value": "GATEWAY ADMINS"}))
	if !warned() {
		t.Fatal("no warning once two groups have the admin group's name")
	}
}
