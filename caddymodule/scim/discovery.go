package scim

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	scimerrors "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/schema"
)

// The discovery endpoints (RFC 7644 §4) are served here rather than by the
// library, so that they say exactly what this server does: the library's
// documents advertise bulk with a fixed 1 MiB payload, nested groups,
// members.display and manager.displayName, carry no meta and no
// documentation link, and its /Schemas?filter= reports the unfiltered
// count. The schemas the library validates requests with are unchanged;
// only what is published differs, where the server does less than the
// standard schema describes.

// DocumentationURI is the human-readable documentation of this server's
// SCIM behaviour: what it supports, what it refuses and its limits.
const DocumentationURI = "https://github.com/ssogate/ssogate#user-provisioning-scim-20"

const (
	spcURN    = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
	rtURN     = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
	listURN   = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	schemaURN = "urn:ietf:params:scim:schemas:core:2.0:Schema"
)

// discovery serves GET /ServiceProviderConfig, /ResourceTypes[/{id}] and
// /Schemas[/{id}]; handled is false for other paths.
func (s *Server) discovery(w http.ResponseWriter, r *http.Request, orgID, sub string) (handled bool) {
	var what string
	for _, p := range []string{"/v2/ServiceProviderConfig", "/v2/ResourceTypes", "/v2/Schemas"} {
		if sub == p || strings.HasPrefix(sub, p+"/") {
			what = p
		}
	}
	if what == "" {
		return false
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeError(w, scimerrors.ScimError{Status: http.StatusMethodNotAllowed, Detail: "The discovery endpoints are read-only."})
		return true
	}
	// RFC 7644 §4: query parameters are ignored, but a filter is refused,
	// so that a client cannot take the whole list for matches.
	if q, _ := urlQuery(r); q.Has("filter") {
		writeError(w, scimerrors.ScimError{Status: http.StatusForbidden, Detail: "The discovery endpoints are not filtered (RFC 7644 §4); list them whole."})
		return true
	}
	base := s.BaseURL(orgID)
	var docs []map[string]any
	switch what {
	case "/v2/ServiceProviderConfig":
		if sub != what {
			writeError(w, scimerrors.ScimErrorResourceNotFound(strings.TrimPrefix(sub, what+"/")))
			return true
		}
		writeJSON(w, s.serviceProviderConfig(base))
		return true
	case "/v2/ResourceTypes":
		docs = resourceTypes(base)
	case "/v2/Schemas":
		docs = publishedSchemas(base)
	}
	if id, one := strings.CutPrefix(sub, what+"/"); one {
		id, _ = url.PathUnescape(id)
		for _, d := range docs {
			if d["id"] == id {
				writeJSON(w, d)
				return true
			}
		}
		writeError(w, scimerrors.ScimErrorResourceNotFound(id))
		return true
	}
	resources := make([]any, len(docs))
	for i, d := range docs {
		resources[i] = d
	}
	writeJSON(w, map[string]any{
		"schemas":      []string{listURN},
		"totalResults": len(docs),
		"itemsPerPage": len(docs),
		"startIndex":   1,
		"Resources":    resources,
	})
	return true
}

func writeJSON(w http.ResponseWriter, v any) {
	raw, err := json.Marshal(v)
	if err != nil {
		writeError(w, scimerrors.ScimErrorInternal)
		return
	}
	w.Header().Set("Content-Type", "application/scim+json")
	w.Header().Set("Content-Length", strconv.Itoa(len(raw)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(raw)
}

func discoveryMeta(resourceType, location string) map[string]any {
	return map[string]any{"resourceType": resourceType, "location": location}
}

func (s *Server) serviceProviderConfig(base string) map[string]any {
	return map[string]any{
		"schemas":          []string{spcURN},
		"documentationUri": DocumentationURI,
		"patch":            map[string]any{"supported": true},
		// Bulk is not supported; maxPayloadSize is still the largest
		// body any request may have.
		"bulk":           map[string]any{"supported": false, "maxOperations": 0, "maxPayloadSize": s.limits.MaxRequestBytes},
		"filter":         map[string]any{"supported": true, "maxResults": maxResults},
		"changePassword": map[string]any{"supported": false},
		"sort":           map[string]any{"supported": false},
		"etag":           map[string]any{"supported": false},
		"authenticationSchemes": []any{map[string]any{
			"type":             "oauthbearertoken",
			"name":             "OAuth Bearer Token",
			"description":      "The organization's SCIM token, sent as Authorization: Bearer <token>. The gateway's operator or the organization's admin generates it; rotating it revokes the previous one.",
			"specUri":          "https://www.rfc-editor.org/rfc/rfc6750",
			"documentationUri": DocumentationURI,
			"primary":          true,
		}},
		"meta": discoveryMeta("ServiceProviderConfig", base+"/ServiceProviderConfig"),
	}
}

func resourceTypes(base string) []map[string]any {
	return []map[string]any{
		{
			"schemas":          []string{rtURN},
			"id":               "User",
			"name":             "User",
			"endpoint":         "/Users",
			"description":      "User Account",
			"schema":           userSchema.ID,
			"schemaExtensions": []any{map[string]any{"schema": enterpriseSchema.ID, "required": false}},
			"meta":             discoveryMeta("ResourceType", base+"/ResourceTypes/User"),
		},
		{
			"schemas":          []string{rtURN},
			"id":               "Group",
			"name":             "Group",
			"endpoint":         "/Groups",
			"description":      "Group",
			"schema":           groupSchema.ID,
			"schemaExtensions": []any{},
			"meta":             discoveryMeta("ResourceType", base+"/ResourceTypes/Group"),
		},
	}
}

// publishedSchemas are the schemas as this server implements them.
func publishedSchemas(base string) []map[string]any {
	var out []map[string]any
	for _, sc := range []schema.Schema{userSchema, groupSchema, enterpriseSchema} {
		// A JSON round trip: the edits below must not reach the schemas
		// the library validates with (ToMap shares nothing mutable, but
		// a deep copy keeps that true whatever it returns).
		var m map[string]any
		raw, err := json.Marshal(sc.ToMap())
		if err != nil || json.Unmarshal(raw, &m) != nil {
			continue
		}
		attrs, _ := m["attributes"].([]any)
		switch sc.ID {
		case userSchema.ID:
			// groups is computed from the memberships (read-only); the
			// groups are returned by value and $ref, without display
			// (a read of each group) and all direct (no nesting).
			dropSub(attrs, "groups", "display")
			setSub(attrs, "groups", "type", "canonicalValues", []any{"direct"})
		case groupSchema.ID:
			// Only users are members (nested groups are refused), and a
			// member's display is not kept.
			dropSub(attrs, "members", "display")
			setSub(attrs, "members", "type", "canonicalValues", []any{"User"})
			setSub(attrs, "members", "$ref", "referenceTypes", []any{"User"})
			// displayName keeps the standard's uniqueness "none": groups
			// may share a name (an admin-group mapping by such a name
			// admits nobody).
		case enterpriseSchema.ID:
			// The manager is kept as the IdP sends it; its displayName
			// is not computed.
			dropSub(attrs, "manager", "displayName")
		}
		m["meta"] = discoveryMeta("Schema", base+"/Schemas/"+sc.ID)
		out = append(out, m)
	}
	return out
}

func findAttr(attrs []any, name string) map[string]any {
	for _, a := range attrs {
		m, _ := a.(map[string]any)
		if n, _ := m["name"].(string); n != "" && strings.EqualFold(n, name) {
			return m
		}
	}
	return nil
}

func setSub(attrs []any, name, sub, key string, v any) {
	if a := findAttr(attrs, name); a != nil {
		subs, _ := a["subAttributes"].([]any)
		if s := findAttr(subs, sub); s != nil {
			s[key] = v
		}
	}
}

func dropSub(attrs []any, name, sub string) {
	a := findAttr(attrs, name)
	if a == nil {
		return
	}
	subs, _ := a["subAttributes"].([]any)
	kept := subs[:0]
	for _, s := range subs {
		m, _ := s.(map[string]any)
		if n, _ := m["name"].(string); !strings.EqualFold(n, sub) {
			kept = append(kept, s)
		}
	}
	a["subAttributes"] = kept
}
