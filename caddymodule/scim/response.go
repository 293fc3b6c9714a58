package scim

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	scimerrors "github.com/elimity-com/scim/errors"
	"github.com/go-json-experiment/json/jsontext"
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
	case errors.Is(err, store.ErrKeyTooLong):
		// Before ErrInvalid, which it also is: the store's message
		// quotes the whole key.
		return badValue("An identifier (externalId, userName, displayName or an email address) is too long to be indexed; nothing was changed.")
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
	case errors.Is(err, store.ErrQuota):
		return s.limits.storedBytesError()
	case errors.Is(err, store.ErrTxnTooBig):
		// A change the store cannot make in one transaction (Badger's
		// holds about 10 MB of keys: a membership change that large
		// needs max_request_size raised past its default). Nothing of it
		// was written. A 400 like the other
		// size caps on group members: the library allows a 413 on POST
		// alone.
		return badValue("This request changes more than the server can change at once (in a group, its memberships); nothing was changed. Send it in smaller parts.")
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
	head, n, tail := w.buf.Bytes(), "", []byte(nil)
	if w.status == http.StatusOK {
		head, n, tail = fixItemsPerPage(head)
	}
	w.ResponseWriter.Header().Set("Content-Length", strconv.Itoa(len(head)+len(n)+len(tail)))
	w.ResponseWriter.WriteHeader(w.status)
	// Written in pieces, not joined: a page can be MiBs.
	_, _ = w.ResponseWriter.Write(head)
	_, _ = io.WriteString(w.ResponseWriter, n)
	_, _ = w.ResponseWriter.Write(tail)
}

// fixItemsPerPage sets a ListResponse's itemsPerPage to its number of
// Resources: it returns the body as the part before the number, the
// number, and the part after. The library marshals the response from a
// map, so its keys are sorted: Resources comes first and the top-level
// itemsPerPage is the last member named so (a quote inside a string value
// is escaped, so the name can only be a key). Anything unexpected leaves
// the body as it is.
func fixItemsPerPage(body []byte) (head []byte, n string, tail []byte) {
	count, ok := countResources(body)
	if !ok {
		return body, "", nil
	}
	const key = `"itemsPerPage":`
	i := bytes.LastIndex(body, []byte(key))
	if i < 0 {
		return body, "", nil
	}
	start := i + len(key)
	end := start
	for end < len(body) && body[end] >= '0' && body[end] <= '9' {
		end++
	}
	if end == start {
		return body, "", nil
	}
	return body[:start], strconv.Itoa(count), body[end:]
}

// countResources counts the elements of a ListResponse's Resources,
// skipping over them without decoding.
func countResources(body []byte) (int, bool) {
	dec := jsontext.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return 0, false
	}
	for dec.PeekKind() == '"' {
		name, err := dec.ReadToken()
		if err != nil {
			return 0, false
		}
		if name.String() != "Resources" || dec.PeekKind() != '[' {
			if dec.SkipValue() != nil {
				return 0, false
			}
			continue
		}
		if _, err := dec.ReadToken(); err != nil {
			return 0, false
		}
		n := 0
		for dec.PeekKind() != ']' {
			if dec.SkipValue() != nil {
				return 0, false
			}
			n++
		}
		return n, true
	}
	return 0, true
}
