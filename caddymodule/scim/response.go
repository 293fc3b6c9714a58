package scim

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	scimerrors "github.com/elimity-com/scim/errors"
	"go.uber.org/zap"

	"github.com/ssogate/ssogate/store"
)

// writeError sends a SCIM error response (RFC 7644 §3.12).
func writeError(w http.ResponseWriter, e scimerrors.ScimError) {
	raw, err := json.Marshal(e)
	if err != nil { // cannot happen: the error marshals plain strings
		raw = []byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"500"}`)
	}
	w.Header().Set("Content-Type", "application/scim+json")
	w.WriteHeader(e.Status)
	_, _ = w.Write(raw)
}

// storeError turns a store failure about the resource id into what the
// client should see. The handlers return scimerrors.ScimError values, never
// pointers: the library's CheckScimError matches values only and would
// answer a pointer with a 500.
func (s *Server) storeError(err error, id, conflictDetail string) error {
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrInvalid) && id != "":
		return scimerrors.ScimErrorResourceNotFound(id)
	case errors.Is(err, store.ErrConflict):
		e := scimerrors.ScimErrorUniqueness
		if conflictDetail != "" {
			e.Detail = conflictDetail
		}
		return e
	case errors.Is(err, store.ErrInvalid):
		return badValue(strings.TrimPrefix(err.Error(), "store: "))
	}
	s.log.Error("SCIM request failed", zap.Error(err))
	return scimerrors.ScimErrorInternal
}

// badValue is a 400 invalidValue with a specific explanation.
func badValue(detail string) scimerrors.ScimError {
	e := scimerrors.ScimErrorInvalidValue
	e.Detail = detail
	return e
}

// isList tells the requests answered with a ListResponse.
func isList(method, sub string) bool {
	switch method {
	case http.MethodGet:
		switch sub {
		case "/v2/Users", "/v2/Groups", "/v2/Schemas", "/v2/ResourceTypes":
			return true
		}
	case http.MethodPost:
		return strings.HasSuffix(sub, "/.search")
	}
	return false
}

// listWriter holds back a ListResponse to correct its itemsPerPage: the
// library reports the page size asked for, RFC 7644 §3.4.2 (and Okta and
// Entra ID, which page with it) the number of resources returned.
type listWriter struct {
	http.ResponseWriter
	status int
	buf    bytes.Buffer
}

func (w *listWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *listWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.buf.Write(b)
}

// finish sends the (corrected) response.
func (w *listWriter) finish() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	body := w.buf.Bytes()
	if w.status == http.StatusOK {
		body = fixItemsPerPage(body)
	}
	w.ResponseWriter.WriteHeader(w.status)
	_, _ = w.ResponseWriter.Write(body)
}

// fixItemsPerPage sets a ListResponse's itemsPerPage to its number of
// Resources. Only the top level is decoded; the resources pass through as
// raw JSON.
func fixItemsPerPage(body []byte) []byte {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return body
	}
	var resources []json.RawMessage
	if raw, ok := top["Resources"]; ok && string(raw) != "null" {
		if json.Unmarshal(raw, &resources) != nil {
			return body
		}
	}
	n, _ := json.Marshal(len(resources))
	top["itemsPerPage"] = n
	out, err := json.Marshal(top)
	if err != nil {
		return body
	}
	return out
}
