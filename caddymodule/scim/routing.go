package scim

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"

	scimerrors "github.com/elimity-com/scim/errors"
	"github.com/scim2/filter-parser/v2"
)

// otherVersion matches a base path of another SCIM version (/v1/...).
var otherVersion = regexp.MustCompile(`^/v[0-9]+(/|$)`)

// route answers the requests the library would answer wrongly, before
// any body is read: another protocol version, methods an endpoint does
// not have (405 with Allow, where the library says 404), an empty
// resource id (which reached the store as ""), and the root endpoint and
// root search, which this server does not offer (the library answers
// tooMany). It returns false when it answered.
func route(w http.ResponseWriter, r *http.Request, sub string) bool {
	if sub != "/v2" && !strings.HasPrefix(sub, "/v2/") {
		e := scimerrors.ScimError{Status: http.StatusNotFound, Detail: "Specified endpoint does not exist; the SCIM base URL ends in /v2."}
		if otherVersion.MatchString(sub) {
			e.ScimType = "invalidVers"
			e.Detail = "This server speaks SCIM 2.0 only; the base URL ends in /v2."
		}
		writeError(w, e)
		return false
	}
	allow := func(methods ...string) bool {
		for _, m := range methods {
			if r.Method == m {
				return true
			}
		}
		w.Header().Set("Allow", strings.Join(methods, ", "))
		writeError(w, scimerrors.ScimError{Status: http.StatusMethodNotAllowed, Detail: r.Method + " is not supported on this endpoint."})
		return false
	}
	rest := strings.TrimPrefix(sub, "/v2")
	switch {
	case rest == "" || rest == "/" || rest == "/.search":
		writeError(w, scimerrors.ScimError{Status: http.StatusNotFound,
			Detail: "Queries across resource types are not supported; use /Users or /Groups (and their /.search)."})
		return false
	case rest == "/Users" || rest == "/Groups":
		return allow(http.MethodGet, http.MethodPost)
	case rest == "/Users/.search" || rest == "/Groups/.search":
		return allow(http.MethodPost)
	case rest == "/Users/" || rest == "/Groups/":
		writeError(w, scimerrors.ScimError{Status: http.StatusNotFound, Detail: "No resource id in the path."})
		return false
	case strings.HasPrefix(rest, "/Users/") || strings.HasPrefix(rest, "/Groups/"):
		return allow(http.MethodGet, http.MethodPut, http.MethodPatch, http.MethodDelete)
	}
	return true
}

// checkPatchRequest refuses, with the error RFC 7644 §3.5.2 names, a
// PATCH that lacks the PatchOp schema (invalidSyntax) or that targets
// id, meta or schemas (mutability), which the library reports as other
// errors. The body has passed checkJSON and checkBodyExpressions.
func checkPatchRequest(body []byte) error {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return nil // not an object: the library refuses it
	}
	var schemas []string
	_ = json.Unmarshal(m[findRawKey(m, "schemas")], &schemas)
	found := false
	for _, s := range schemas {
		found = found || s == "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	}
	if !found {
		return badSyntax(`A PATCH request needs "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"].`)
	}
	var ops []map[string]json.RawMessage
	if json.Unmarshal(m[findRawKey(m, "Operations")], &ops) != nil {
		return nil
	}
	for _, op := range ops {
		var p string
		if json.Unmarshal(op[findRawKey(op, "path")], &p) != nil || strings.TrimSpace(p) == "" {
			continue
		}
		path, err := filter.ParsePath([]byte(p))
		if err != nil {
			continue // the library reports invalidPath
		}
		if uri := path.AttributePath.URI(); uri != "" && !strings.HasPrefix(uri, "urn:ietf:params:scim:schemas:core:2.0:") {
			continue
		}
		switch strings.ToLower(path.AttributePath.AttributeName) {
		case "id", "meta", "schemas":
			e := scimerrors.ScimErrorMutability
			e.Detail = "id, meta and schemas are set by the server and cannot be changed."
			return e
		}
	}
	return nil
}
