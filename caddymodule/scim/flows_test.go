package scim

import (
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"testing"
)

// The two tests below follow, request by request, what Okta's and
// Microsoft's SCIM documentation says their provisioning clients send, and
// check each answer's status and body.

func TestOktaProvisioningFlow(t *testing.T) {
	e := newEnv(t)
	// Existing users, for the import.
	existing := []string{e.createUser("acme", "old1@acme.com", nil), e.createUser("acme", "old2@acme.com", nil), e.createUser("acme", "old3@acme.com", nil)}

	// "Test connector configuration" and "Import users": pages of count 2.
	r := e.must(http.StatusOK, "acme", http.MethodGet, "/Users?startIndex=1&count=2", nil)
	if r.header.Get("Content-Type") != "application/scim+json" || num(r.body["totalResults"]) != 3 || num(r.body["itemsPerPage"]) != 2 || num(r.body["startIndex"]) != 1 {
		t.Fatalf("first page: %s", r.raw)
	}
	var imported []string
	for start := 1; start <= num(r.body["totalResults"]); start += 2 {
		p := e.must(http.StatusOK, "acme", http.MethodGet, "/Users?startIndex="+strconv.Itoa(start)+"&count=2", nil)
		for _, u := range resources(t, p) {
			imported = append(imported, u["id"].(string))
		}
	}
	slices.Sort(imported)
	slices.Sort(existing)
	if !slices.Equal(imported, existing) {
		t.Fatalf("import got %v, want %v", imported, existing)
	}

	// "Create users": look the userName up, then POST.
	q := "/Users?filter=" + url.QueryEscape(`userName eq "test.user@acme.com"`) + "&startIndex=1&count=100"
	r = e.must(http.StatusOK, "acme", http.MethodGet, q, nil)
	if num(r.body["totalResults"]) != 0 || len(resources(t, r)) != 0 {
		t.Fatalf("lookup before create: %s", r.raw)
	}
	create := oktaUser("test.user@acme.com")
	delete(create, enterpriseURN)
	r = e.must(http.StatusCreated, "acme", http.MethodPost, "/Users", create)
	id := r.body["id"].(string)
	if r.body["externalId"] != "00utest.user" || r.body["active"] != true || r.body["password"] != nil {
		t.Fatalf("create: %s", r.raw)
	}
	r = e.must(http.StatusOK, "acme", http.MethodGet, q, nil)
	if res := resources(t, r); len(res) != 1 || res[0]["id"] != id {
		t.Fatalf("lookup after create: %s", r.raw)
	}

	// "Retrieve users" and "Update a specific user (PUT)".
	r = e.must(http.StatusOK, "acme", http.MethodGet, "/Users/"+id, nil)
	if r.body["userName"] != "test.user@acme.com" {
		t.Fatalf("retrieve: %s", r.raw)
	}
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
	r = e.must(http.StatusOK, "acme", http.MethodPut, "/Users/"+id, put)
	if !reflect.DeepEqual(r.body["name"], put["name"]) || !reflect.DeepEqual(r.body["emails"], put["emails"]) || r.body["externalId"] != "00utest.user" {
		t.Fatalf("PUT: %s", r.raw)
	}

	// "Update a specific user (PATCH)": deactivate and reactivate.
	r = e.must(http.StatusOK, "acme", http.MethodPatch, "/Users/"+id, patchOp(map[string]any{"op": "replace", "value": map[string]any{"active": false}}))
	if r.body["active"] != false || r.body["userName"] != "test.user@acme.com" {
		t.Fatalf("deactivate: %s", r.raw)
	}
	r = e.must(http.StatusOK, "acme", http.MethodPatch, "/Users/"+id, patchOp(map[string]any{"op": "replace", "value": map[string]any{"active": true}}))
	if r.body["active"] != true {
		t.Fatalf("reactivate: %s", r.raw)
	}

	// Group push: create, then incremental and full membership updates,
	// rename, unlink with delete.
	r = e.must(http.StatusOK, "acme", http.MethodGet, "/Groups?filter="+url.QueryEscape(`displayName eq "Test SCIMv2"`)+"&startIndex=1&count=100", nil)
	if num(r.body["totalResults"]) != 0 {
		t.Fatalf("group lookup: %s", r.raw)
	}
	r = e.must(http.StatusCreated, "acme", http.MethodPost, "/Groups", map[string]any{
		"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": "Test SCIMv2", "members": []any{},
	})
	gid := r.body["id"].(string)
	if r.body["displayName"] != "Test SCIMv2" || r.body["members"] != nil {
		t.Fatalf("group create: %s", r.raw)
	}
	r = e.must(http.StatusOK, "acme", http.MethodPatch, "/Groups/"+gid, patchOp(
		map[string]any{"op": "add", "path": "members", "value": []any{
			map[string]any{"value": id, "display": "test.user@acme.com"},
			map[string]any{"value": existing[0], "display": "old"},
		}},
	))
	if got := sortedMembers(r.body); !slices.Equal(got, sortedIDs(id, existing[0])) {
		t.Fatalf("incremental add: %s", r.raw)
	}
	r = e.must(http.StatusOK, "acme", http.MethodPatch, "/Groups/"+gid, patchOp(
		map[string]any{"op": "remove", "path": `members[value eq "` + existing[0] + `"]`},
		map[string]any{"op": "add", "path": "members", "value": []any{map[string]any{"value": existing[1], "display": "old2"}}},
	))
	if got := sortedMembers(r.body); !slices.Equal(got, sortedIDs(id, existing[1])) {
		t.Fatalf("incremental remove+add: %s", r.raw)
	}
	r = e.must(http.StatusOK, "acme", http.MethodPut, "/Groups/"+gid, map[string]any{
		"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "id": gid, "displayName": "Test SCIMv2",
		"members": []any{map[string]any{"value": existing[2], "display": "old3"}, map[string]any{"value": id, "display": "t"}},
	})
	if got := sortedMembers(r.body); !slices.Equal(got, sortedIDs(id, existing[2])) {
		t.Fatalf("full update: %s", r.raw)
	}
	r = e.must(http.StatusOK, "acme", http.MethodPatch, "/Groups/"+gid, patchOp(map[string]any{"op": "replace", "value": map[string]any{"id": gid, "displayName": "Test SCIMv3"}}))
	if r.body["displayName"] != "Test SCIMv3" || len(sortedMembers(r.body)) != 2 {
		t.Fatalf("rename: %s", r.raw)
	}
	r = e.must(http.StatusOK, "acme", http.MethodGet, "/Groups/"+gid, nil)
	if r.body["displayName"] != "Test SCIMv3" {
		t.Fatalf("group get: %s", r.raw)
	}
	e.must(http.StatusNoContent, "acme", http.MethodDelete, "/Groups/"+gid, nil)
	e.scimError(e.call("acme", http.MethodGet, "/Groups/"+gid, nil), http.StatusNotFound, "")
}

func TestEntraProvisioningFlow(t *testing.T) {
	e := newEnv(t)
	// Test connection: a query for a user that does not exist.
	r := e.must(http.StatusOK, "acme", http.MethodGet, "/Users?filter="+url.QueryEscape(`userName eq "non-existent user"`), nil)
	if num(r.body["totalResults"]) != 0 || len(resources(t, r)) != 0 || num(r.body["itemsPerPage"]) != 0 {
		t.Fatalf("test connection: %s", r.raw)
	}

	// Create User.
	userName := "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1@acme.com"
	r = e.must(http.StatusCreated, "acme", http.MethodPost, "/Users", map[string]any{
		"schemas":     []string{"urn:ietf:params:scim:schemas:core:2.0:User", enterpriseURN},
		"externalId":  "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
		"userName":    userName,
		"active":      true,
		"emails":      []any{map[string]any{"primary": true, "type": "work", "value": "Test_User_fd0ea19b@acme.com"}},
		"meta":        map[string]any{"resourceType": "User"},
		"name":        map[string]any{"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
		"roles":       []any{},
		enterpriseURN: map[string]any{"department": "Sales"},
	})
	id := r.body["id"].(string)
	if r.body["externalId"] != "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef" || r.body["userName"] != userName {
		t.Fatalf("create: %s", r.raw)
	}
	if schemas, _ := r.body["schemas"].([]any); !slices.Contains(schemas, enterpriseURN) {
		t.Errorf("schemas %v", schemas)
	}
	e.scimError(e.call("acme", http.MethodPost, "/Users", map[string]any{
		"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": userName, "externalId": "other",
	}), http.StatusConflict, "uniqueness")

	// Get User, Get User by query (userName and externalId).
	e.must(http.StatusOK, "acme", http.MethodGet, "/Users/"+id, nil)
	for _, f := range []string{`userName eq "` + userName + `"`, `externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"`} {
		r = e.must(http.StatusOK, "acme", http.MethodGet, "/Users?filter="+url.QueryEscape(f), nil)
		if res := resources(t, r); len(res) != 1 || res[0]["id"] != id || num(r.body["itemsPerPage"]) != 1 {
			t.Fatalf("%s: %s", f, r.raw)
		}
	}

	// Update User [Multi-valued properties] and [Single-valued properties].
	r = e.must(http.StatusOK, "acme", http.MethodPatch, "/Users/"+id, patchOp(
		map[string]any{"op": "Replace", "path": `emails[type eq "work"].value`, "value": "updatedEmail@acme.com"},
		map[string]any{"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
	))
	if !reflect.DeepEqual(r.body["emails"], []any{map[string]any{"primary": true, "type": "work", "value": "updatedEmail@acme.com"}}) ||
		r.body["name"].(map[string]any)["familyName"] != "updatedFamilyName" {
		t.Fatalf("multi-valued update: %s", r.raw)
	}
	r = e.must(http.StatusOK, "acme", http.MethodPatch, "/Users/"+id, patchOp(map[string]any{"op": "Replace", "path": "userName", "value": "5b50642d@acme.com"}))
	if r.body["userName"] != "5b50642d@acme.com" {
		t.Fatalf("single-valued update: %s", r.raw)
	}
	// Update the manager, as Microsoft documents it (path without URN,
	// value as an array) and as Entra ID also sends it (a bare id).
	for _, op := range []map[string]any{
		{"op": "Add", "path": "manager", "value": []any{map[string]any{"$ref": nil, "value": "2819c223-7f76-453a-919d-413861904646"}}},
		{"op": "Replace", "path": enterpriseURN + ":manager", "value": "2819c223-7f76-453a-919d-413861904646"},
	} {
		r = e.must(http.StatusOK, "acme", http.MethodPatch, "/Users/"+id, patchOp(op))
		ext, _ := r.body[enterpriseURN].(map[string]any)
		if m, _ := ext["manager"].(map[string]any); m["value"] != "2819c223-7f76-453a-919d-413861904646" || ext["department"] != "Sales" {
			t.Fatalf("manager: %s", r.raw)
		}
	}
	// Disable User, with Entra ID's string boolean.
	r = e.must(http.StatusOK, "acme", http.MethodPatch, "/Users/"+id, patchOp(map[string]any{"op": "Replace", "path": "active", "value": "False"}))
	if r.body["active"] != false {
		t.Fatalf("disable: %s", r.raw)
	}

	// Groups: create, look up without members, add a member, test the
	// membership, remove it, rename, delete.
	r = e.must(http.StatusCreated, "acme", http.MethodPost, "/Groups", map[string]any{
		"schemas":     []string{"urn:ietf:params:scim:schemas:core:2.0:Group", "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"},
		"externalId":  "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
		"displayName": "displayName",
		"meta":        map[string]any{"resourceType": "Group"},
	})
	gid := r.body["id"].(string)
	if r.body["externalId"] != "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159" {
		t.Fatalf("group create: %s", r.raw)
	}
	r = e.must(http.StatusOK, "acme", http.MethodGet, "/Groups?excludedAttributes=members&filter="+url.QueryEscape(`displayName eq "displayName"`), nil)
	if res := resources(t, r); len(res) != 1 || res[0]["id"] != gid {
		t.Fatalf("group by name: %s", r.raw)
	}
	e.must(http.StatusOK, "acme", http.MethodGet, "/Groups/"+gid+"?excludedAttributes=members", nil)
	e.must(http.StatusOK, "acme", http.MethodPatch, "/Groups/"+gid, patchOp(map[string]any{"op": "Add", "path": "members", "value": []any{map[string]any{"$ref": nil, "value": id}}}))
	probe := "/Groups?excludedAttributes=members&filter=" + url.QueryEscape(`id eq "`+gid+`" and members[value eq "`+id+`"]`)
	r = e.must(http.StatusOK, "acme", http.MethodGet, probe, nil)
	if res := resources(t, r); len(res) != 1 || res[0]["members"] != nil {
		t.Fatalf("membership probe: %s", r.raw)
	}
	r = e.must(http.StatusOK, "acme", http.MethodPatch, "/Groups/"+gid, patchOp(
		map[string]any{"op": "Remove", "path": "members", "value": []any{map[string]any{"$ref": nil, "value": id}}},
		map[string]any{"op": "Replace", "path": "displayName", "value": "1879db59updatedDisplayName"},
	))
	if r.body["displayName"] != "1879db59updatedDisplayName" || r.body["members"] != nil {
		t.Fatalf("group update: %s", r.raw)
	}
	r = e.must(http.StatusOK, "acme", http.MethodGet, probe, nil)
	if num(r.body["totalResults"]) != 0 {
		t.Fatalf("probe after removal: %s", r.raw)
	}
	e.must(http.StatusNoContent, "acme", http.MethodDelete, "/Groups/"+gid, nil)

	// Delete User.
	e.must(http.StatusNoContent, "acme", http.MethodDelete, "/Users/"+id, nil)
	e.scimError(e.call("acme", http.MethodGet, "/Users/"+id, nil), http.StatusNotFound, "")
}

func sortedMembers(g map[string]any) []string {
	ids := memberIDs(g)
	slices.Sort(ids)
	return ids
}

func sortedIDs(ids ...string) []string {
	slices.Sort(ids)
	return ids
}
