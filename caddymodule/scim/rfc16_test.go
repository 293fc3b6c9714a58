package scim

import (
	"net/http"
	"testing"
)

// Endpoints and methods answer as RFC 7644 says, before any body is read.
func TestRoutingAnswers(t *testing.T) {
	e := newEnv(t)
	id := e.createUser("acme", "kim@acme.com", nil)
	for _, c := range []struct {
		method, path string
		status       int
		scimType     string
		allow        string
	}{
		{http.MethodGet, "/Users/", http.StatusNotFound, "", ""},
		{http.MethodDelete, "/Groups/", http.StatusNotFound, "", ""},
		{http.MethodPut, "/Users", http.StatusMethodNotAllowed, "", "GET, POST"},
		{http.MethodPatch, "/Groups", http.StatusMethodNotAllowed, "", "GET, POST"},
		{http.MethodDelete, "/Users", http.StatusMethodNotAllowed, "", "GET, POST"},
		{http.MethodPost, "/Users/" + id, http.StatusMethodNotAllowed, "", "GET, PUT, PATCH, DELETE"},
		{http.MethodGet, "/Users/.search", http.StatusMethodNotAllowed, "", "POST"},
		{http.MethodGet, "", http.StatusNotFound, "", ""},
		{http.MethodGet, "/", http.StatusNotFound, "", ""},
		{http.MethodPost, "/.search", http.StatusNotFound, "", ""},
	} {
		var body any
		if c.method == http.MethodPost || c.method == http.MethodPut || c.method == http.MethodPatch {
			body = map[string]any{}
		}
		r := e.call("acme", c.method, c.path, body)
		e.scimError(r, c.status, c.scimType)
		if r.header.Get("Allow") != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, r.header.Get("Allow"), c.allow)
		}
	}
	// HEAD gets 405 with no body.
	r := e.call("acme", http.MethodHead, "/Users", nil)
	if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET, POST" {
		t.Errorf("HEAD /Users: %d %v", r.status, r.header)
	}
	// Another version.
	e.scimError(e.callWith(e.tokens["acme"], http.MethodGet, testPrefix+"/scim/acme/v1/Users", nil), http.StatusNotFound, "invalidVers")
	// Unauthenticated requests still get 401 first.
	if r := e.callWith("", http.MethodGet, testPrefix+"/scim/acme/v1/Users", nil); r.status != http.StatusUnauthorized {
		t.Errorf("v1 without token: %d", r.status)
	}
}

func TestPatchRFCDetails(t *testing.T) {
	e := newEnv(t)
	id := e.createUser("acme", "kim@acme.com", map[string]any{
		"title": "Engineer",
		"phoneNumbers": []any{
			map[string]any{"value": "+1 555 0100", "type": "mobile"},
			map[string]any{"value": "+1 555 0101", "type": "work"},
		},
	})
	// replace with null clears.
	r := e.must(http.StatusOK, "acme", http.MethodPatch, "/Users/"+id, patchOp(map[string]any{"op": "Replace", "path": "title", "value": nil}))
	if _, has := r.body["title"]; has {
		t.Errorf("title after replace null: %s", r.raw)
	}
	// Entra ID's phone removal leaves no value-less stub.
	r = e.must(http.StatusOK, "acme", http.MethodPatch, "/Users/"+id, patchOp(map[string]any{"op": "Remove", "path": `phoneNumbers[type eq "mobile"].value`}))
	phones, _ := r.body["phoneNumbers"].([]any)
	if len(phones) != 1 || phones[0].(map[string]any)["type"] != "work" {
		t.Errorf("phoneNumbers after remove: %s", r.raw)
	}
	// Removing another sub-attribute keeps the value.
	r = e.must(http.StatusOK, "acme", http.MethodPatch, "/Users/"+id, patchOp(map[string]any{"op": "remove", "path": `phoneNumbers[type eq "work"].type`}))
	if phones, _ := r.body["phoneNumbers"].([]any); len(phones) != 1 || phones[0].(map[string]any)["value"] != "+1 555 0101" {
		t.Errorf("phoneNumbers after removing type: %s", r.raw)
	}
	// id and meta are the server's.
	for _, path := range []string{"id", "meta.lastModified", "urn:ietf:params:scim:schemas:core:2.0:User:id", "schemas"} {
		e.scimError(e.call("acme", http.MethodPatch, "/Users/"+id, patchOp(map[string]any{"op": "replace", "path": path, "value": "x"})), http.StatusBadRequest, "mutability")
	}
	// No PatchOp schema.
	e.scimError(e.call("acme", http.MethodPatch, "/Users/"+id, map[string]any{
		"Operations": []any{map[string]any{"op": "replace", "path": "title", "value": "y"}},
	}), http.StatusBadRequest, "invalidSyntax")
	e.scimError(e.call("acme", http.MethodPatch, "/Users/"+id, map[string]any{
		"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:SearchRequest"},
		"Operations": []any{map[string]any{"op": "replace", "path": "title", "value": "y"}},
	}), http.StatusBadRequest, "invalidSyntax")
	// emails as one object is refused, not dropped; nothing changed.
	put := map[string]any{
		"schemas":  []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
		"userName": "kim@acme.com",
		"emails":   map[string]any{"value": "kim@acme.com", "type": "work"},
	}
	e.scimError(e.call("acme", http.MethodPut, "/Users/"+id, put), http.StatusBadRequest, "invalidValue")
	put["userName"] = "new@acme.com"
	e.scimError(e.call("acme", http.MethodPost, "/Users", put), http.StatusBadRequest, "invalidValue")
	if u, err := e.store.GetUser("acme", id); err != nil || u.UserName != "kim@acme.com" {
		t.Errorf("user changed: %+v %v", u, err)
	}
}
