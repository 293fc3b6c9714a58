package scim

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestGroupLifecycle(t *testing.T) {
	e := newEnv(t)
	a := e.createUser("acme", "a@acme.com", nil)
	b := e.createUser("acme", "b@acme.com", nil)
	c := e.createUser("acme", "c@acme.com", nil)
	stranger := e.createUser("globex", "x@globex.com", nil)

	r := e.must(http.StatusCreated, "acme", http.MethodPost, "/Groups", map[string]any{
		"schemas":     []string{"urn:ietf:params:scim:schemas:core:2.0:Group"},
		"displayName": "Gateway Admins",
		"externalId":  "00g1",
		"members":     []any{map[string]any{"value": a, "display": "a@acme.com"}},
	})
	gid, _ := r.body["id"].(string)
	if r.header.Get("Location") != testBase+testPrefix+"/scim/acme/v2/Groups/"+gid || r.body["externalId"] != "00g1" || r.body["displayName"] != "Gateway Admins" {
		t.Fatalf("POST: %s", r.raw)
	}
	ms, _ := r.body["members"].([]any)
	if len(ms) != 1 || ms[0].(map[string]any)["$ref"] != testBase+testPrefix+"/scim/acme/v2/Users/"+a || ms[0].(map[string]any)["value"] != a {
		t.Errorf("members: %s", r.raw)
	}

	// A duplicate externalId is refused; a shared displayName is not
	// (issue 16: TestGroupsSharingANameThroughSCIM).
	e.scimError(e.call("acme", http.MethodPost, "/Groups", map[string]any{
		"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": "Elsewhere", "externalId": "00g1",
	}), http.StatusConflict, "uniqueness")
	for _, bad := range []string{"nope", stranger} {
		r := e.call("acme", http.MethodPost, "/Groups", map[string]any{
			"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": "Other",
			"members": []any{map[string]any{"value": a}, map[string]any{"value": bad}},
		})
		e.scimError(r, http.StatusBadRequest, "invalidValue")
		if !strings.Contains(r.body["detail"].(string), bad) {
			t.Errorf("detail does not name the member: %s", r.raw)
		}
	}
	if _, err := e.store.GroupIDByDisplayName("acme", "Other"); err == nil {
		t.Fatal("a refused POST created the group")
	}

	get := func(path string) map[string]any {
		t.Helper()
		return e.must(http.StatusOK, "acme", http.MethodGet, path, nil).body
	}
	if g := get("/Groups/" + gid + "?excludedAttributes=members"); g["members"] != nil || g["displayName"] != "Gateway Admins" {
		t.Errorf("excludedAttributes=members: %v", g)
	}

	patch := func(ops ...map[string]any) []string {
		t.Helper()
		r := e.must(http.StatusOK, "acme", http.MethodPatch, "/Groups/"+gid, patchOp(ops...))
		got := memberIDs(r.body)
		slices.Sort(got)
		return got
	}
	sorted := func(ids ...string) []string { slices.Sort(ids); return ids }
	for _, c := range []struct {
		name string
		ops  []map[string]any
		want []string
	}{
		{"okta add", []map[string]any{{"op": "add", "path": "members", "value": []any{map[string]any{"value": b, "display": "b@acme.com"}}}}, sorted(a, b)},
		{"okta remove by value filter", []map[string]any{{"op": "remove", "path": `members[value eq "` + a + `"]`}}, sorted(b)},
		{"entra add and remove with $ref null", []map[string]any{
			{"op": "Add", "path": "members", "value": []any{map[string]any{"$ref": nil, "value": c}, map[string]any{"$ref": nil, "value": a}}},
			{"op": "Remove", "path": "members", "value": []any{map[string]any{"$ref": nil, "value": b}}},
		}, sorted(a, c)},
		{"adding a member twice and removing a non-member change nothing", []map[string]any{
			{"op": "add", "path": "members", "value": []any{map[string]any{"value": a}}},
			{"op": "remove", "path": `members[value eq "` + b + `"]`},
		}, sorted(a, c)},
		{"remove several with or", []map[string]any{{"op": "remove", "path": `members[value eq "` + a + `" or value eq "` + c + `"]`}}, nil},
		{"path-less add", []map[string]any{{"op": "add", "value": map[string]any{"members": []any{map[string]any{"value": b}}}}}, sorted(b)},
		{"replace all", []map[string]any{{"op": "replace", "path": "members", "value": []any{map[string]any{"value": a}, map[string]any{"value": c}}}}, sorted(a, c)},
		{"sub-attribute of a member is a no-op", []map[string]any{{"op": "replace", "path": `members[value eq "` + a + `"].display`, "value": "A"}}, sorted(a, c)},
		{"remove all", []map[string]any{{"op": "remove", "path": "members"}}, nil},
		{"put back", []map[string]any{{"op": "add", "path": "members", "value": []any{map[string]any{"value": a}}}}, sorted(a)},
	} {
		if got := patch(c.ops...); !slices.Equal(got, c.want) {
			t.Errorf("%s: members %v, want %v", c.name, got, c.want)
		}
	}
	for _, u := range []string{a, b, c} {
		is, _ := e.store.IsMember("acme", gid, u)
		if is != (u == a) {
			t.Errorf("IsMember(%s) = %v", u, is)
		}
	}

	// Okta renames with a path-less replace that carries the id.
	r = e.must(http.StatusOK, "acme", http.MethodPatch, "/Groups/"+gid, patchOp(map[string]any{"op": "replace", "value": map[string]any{"id": gid, "displayName": "Admins"}}))
	if r.body["displayName"] != "Admins" || r.body["id"] != gid {
		t.Errorf("rename: %s", r.raw)
	}
	e.must(http.StatusOK, "acme", http.MethodPatch, "/Groups/"+gid, patchOp(map[string]any{"op": "Replace", "path": "displayName", "value": "Gateway Admins"}))

	// Refused PATCHes change nothing.
	for _, c := range []struct {
		op       map[string]any
		status   int
		scimType string
	}{
		{map[string]any{"op": "add", "path": "members", "value": []any{map[string]any{"value": stranger}}}, http.StatusBadRequest, "invalidValue"},
		{map[string]any{"op": "add", "path": "members", "value": []any{map[string]any{"value": b, "type": "Group"}}}, http.StatusBadRequest, "invalidValue"},
		{map[string]any{"op": "remove", "path": "displayName"}, http.StatusBadRequest, "invalidValue"},
		{map[string]any{"op": "replace", "path": "nosuch", "value": "x"}, http.StatusBadRequest, "invalidPath"},
	} {
		e.scimError(e.call("acme", http.MethodPatch, "/Groups/"+gid, patchOp(c.op)), c.status, c.scimType)
	}
	e.must(http.StatusCreated, "acme", http.MethodPost, "/Groups", map[string]any{
		"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": "Taken", "externalId": "00gTaken",
	})
	e.scimError(e.call("acme", http.MethodPatch, "/Groups/"+gid, patchOp(map[string]any{"op": "replace", "path": "externalId", "value": "00gTaken"})), http.StatusConflict, "uniqueness")
	if g := get("/Groups/" + gid); g["displayName"] != "Gateway Admins" || !slices.Equal(memberIDs(g), []string{a}) {
		t.Errorf("refused PATCHes changed the group: %v", g)
	}

	// PUT replaces membership as a whole (Okta's full update); an omitted
	// externalId is kept.
	r = e.must(http.StatusOK, "acme", http.MethodPut, "/Groups/"+gid, map[string]any{
		"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "id": gid, "displayName": "Gateway Admins",
		"members": []any{map[string]any{"value": b}, map[string]any{"value": c}},
	})
	if got := memberIDs(r.body); !slices.Equal(sorted(got...), sorted(b, c)) || r.body["externalId"] != "00g1" {
		t.Errorf("PUT: %s", r.raw)
	}
	e.scimError(e.call("acme", http.MethodPut, "/Groups/"+gid, map[string]any{
		"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": "Gateway Admins",
		"members": []any{map[string]any{"value": "nope"}},
	}), http.StatusBadRequest, "invalidValue")
	e.scimError(e.call("acme", http.MethodPut, "/Groups/nope", map[string]any{
		"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": "X",
	}), http.StatusNotFound, "")

	// Filters, including Entra ID's membership probe.
	list := func(filter string, extra string) []map[string]any {
		t.Helper()
		r := e.must(http.StatusOK, "acme", http.MethodGet, "/Groups?filter="+url.QueryEscape(filter)+extra, nil)
		res := resources(t, r)
		if num(r.body["totalResults"]) != len(res) || num(r.body["itemsPerPage"]) != len(res) {
			t.Errorf("%s: %s", filter, r.raw)
		}
		return res
	}
	if res := list(`displayName eq "GATEWAY admins"`, ""); len(res) != 1 || res[0]["id"] != gid {
		t.Errorf("displayName eq: %v", res)
	}
	if res := list(`externalId eq "00g1"`, ""); len(res) != 1 {
		t.Errorf("externalId eq: %v", res)
	}
	if res := list(`id eq "`+gid+`" and members[value eq "`+b+`"]`, "&excludedAttributes=members"); len(res) != 1 || res[0]["members"] != nil {
		t.Errorf("membership probe (member): %v", res)
	}
	if res := list(`id eq "`+gid+`" and members[value eq "`+a+`"]`, "&excludedAttributes=members"); len(res) != 0 {
		t.Errorf("membership probe (not a member): %v", res)
	}
	if res := list(`members.value eq "`+c+`"`, ""); len(res) != 1 {
		t.Errorf("members.value eq: %v", res)
	}
	if res := list(`displayName eq "Taken" or displayName eq "Gateway Admins"`, "&attributes=displayName"); len(res) != 2 || res[0]["members"] != nil {
		t.Errorf("or + attributes: %v", res)
	}
	if res := list(`displayName co "admin"`, ""); len(res) != 1 || res[0]["displayName"] != "Gateway Admins" {
		t.Errorf("displayName co: %v", res)
	}

	// Deleting a user takes them out of the group; deleting the group
	// removes its memberships.
	e.must(http.StatusNoContent, "acme", http.MethodDelete, "/Users/"+c, nil)
	if got := memberIDs(get("/Groups/" + gid)); !slices.Equal(got, []string{b}) {
		t.Errorf("members after deleting a user: %v", got)
	}
	e.must(http.StatusNoContent, "acme", http.MethodDelete, "/Groups/"+gid, nil)
	e.scimError(e.call("acme", http.MethodGet, "/Groups/"+gid, nil), http.StatusNotFound, "")
	e.scimError(e.call("acme", http.MethodDelete, "/Groups/"+gid, nil), http.StatusNotFound, "")
	e.scimError(e.call("acme", http.MethodPatch, "/Groups/"+gid, patchOp(map[string]any{"op": "remove", "path": "members"})), http.StatusNotFound, "")
	if is, _ := e.store.IsMember("acme", gid, b); is {
		t.Error("membership survived the group")
	}
}

func TestOrganizationsAreIsolated(t *testing.T) {
	e := newEnv(t)
	mine := e.createUser("acme", "shared@example.com", map[string]any{"externalId": "same"})
	theirs := e.createUser("globex", "shared@example.com", map[string]any{"externalId": "same"})
	theirGroup := e.createGroup("globex", "Admins", theirs)
	myGroup := e.createGroup("acme", "Admins", mine)

	// Guessing (or knowing) another org's ids gets nowhere.
	for _, m := range []string{http.MethodGet, http.MethodDelete} {
		e.scimError(e.call("acme", m, "/Users/"+theirs, nil), http.StatusNotFound, "")
		e.scimError(e.call("acme", m, "/Groups/"+theirGroup, nil), http.StatusNotFound, "")
	}
	e.scimError(e.call("acme", http.MethodPatch, "/Users/"+theirs, patchOp(map[string]any{"op": "replace", "path": "active", "value": false})), http.StatusNotFound, "")
	e.scimError(e.call("acme", http.MethodPut, "/Users/"+theirs, oktaUser("evil@example.com")), http.StatusNotFound, "")
	e.scimError(e.call("acme", http.MethodPatch, "/Groups/"+theirGroup, patchOp(map[string]any{"op": "remove", "path": "members"})), http.StatusNotFound, "")
	e.scimError(e.call("acme", http.MethodPatch, "/Groups/"+myGroup, patchOp(map[string]any{"op": "add", "path": "members", "value": []any{map[string]any{"value": theirs}}})), http.StatusBadRequest, "invalidValue")

	if r := e.must(http.StatusOK, "acme", http.MethodGet, "/Users?filter="+url.QueryEscape(`id eq "`+theirs+`"`), nil); len(resources(t, r)) != 0 {
		t.Errorf("id filter crossed orgs: %s", r.raw)
	}
	for _, f := range []string{`userName eq "shared@example.com"`, `externalId eq "same"`} {
		r := e.must(http.StatusOK, "acme", http.MethodGet, "/Users?filter="+url.QueryEscape(f), nil)
		if res := resources(t, r); len(res) != 1 || res[0]["id"] != mine {
			t.Errorf("%s as acme: %s", f, r.raw)
		}
	}
	r := e.must(http.StatusOK, "acme", http.MethodGet, "/Groups?filter="+url.QueryEscape(`members[value eq "`+theirs+`"]`), nil)
	if len(resources(t, r)) != 0 {
		t.Errorf("membership filter crossed orgs: %s", r.raw)
	}
	r = e.must(http.StatusOK, "acme", http.MethodGet, "/Users", nil)
	if res := resources(t, r); len(res) != 1 || res[0]["id"] != mine {
		t.Errorf("acme's list: %s", r.raw)
	}
	// The other org's data is untouched.
	u, err := e.store.GetUser("globex", theirs)
	if err != nil || !u.Active || u.UserName != "shared@example.com" {
		t.Fatalf("globex user = %+v, %v", u, err)
	}
	if is, _ := e.store.IsMember("globex", theirGroup, theirs); !is {
		t.Fatal("globex membership changed")
	}
	// And acme's token does not open globex's endpoint.
	e.scimError(e.callWith(e.tokens["acme"], http.MethodGet, testPrefix+"/scim/globex/v2/Users/"+theirs, nil), http.StatusUnauthorized, "")
}

func TestDiscoveryEndpoints(t *testing.T) {
	e := newEnv(t)
	spc := e.must(http.StatusOK, "acme", http.MethodGet, "/ServiceProviderConfig", nil).body
	patch, _ := spc["patch"].(map[string]any)
	filter, _ := spc["filter"].(map[string]any)
	schemes, _ := spc["authenticationSchemes"].([]any)
	if patch["supported"] != true || filter["supported"] != true || num(filter["maxResults"]) != maxResults || len(schemes) != 1 ||
		schemes[0].(map[string]any)["type"] != "oauthbearertoken" {
		t.Errorf("ServiceProviderConfig: %v", spc)
	}
	rt := e.must(http.StatusOK, "acme", http.MethodGet, "/ResourceTypes", nil)
	types := resources(t, rt)
	if len(types) != 2 || num(rt.body["itemsPerPage"]) != 2 || types[0]["endpoint"] != "/Users" || types[1]["endpoint"] != "/Groups" {
		t.Fatalf("ResourceTypes: %s", rt.raw)
	}
	if ext, _ := types[0]["schemaExtensions"].([]any); len(ext) != 1 || ext[0].(map[string]any)["schema"] != enterpriseURN {
		t.Errorf("User extensions: %v", types[0]["schemaExtensions"])
	}
	e.must(http.StatusOK, "acme", http.MethodGet, "/ResourceTypes/User", nil)
	sc := e.must(http.StatusOK, "acme", http.MethodGet, "/Schemas", nil)
	var ids []string
	for _, s := range resources(t, sc) {
		ids = append(ids, s["id"].(string))
	}
	for _, want := range []string{"urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:core:2.0:Group", enterpriseURN} {
		if !slices.Contains(ids, want) {
			t.Errorf("Schemas lacks %s: %v", want, ids)
		}
	}
	if s := e.must(http.StatusOK, "acme", http.MethodGet, "/Schemas/"+enterpriseURN, nil).body; s["id"] != enterpriseURN {
		t.Errorf("schema: %v", s)
	}
	e.scimError(e.call("acme", http.MethodGet, "/Schemas/urn:nope", nil), http.StatusNotFound, "")
}
