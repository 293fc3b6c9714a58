package scim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	scimerrors "github.com/elimity-com/scim/errors"
	"github.com/go-json-experiment/json/jsontext"
)

// The checks in this file run on every authenticated request before any
// parser of the SCIM library (or of this package) sees it: the library's
// filter parser recurses once per nesting level and overflows the Go
// stack, which no recover() catches, on a few hundred KiB of parentheses;
// encoding/json silently turns invalid UTF-8 into U+FFFD, keeps the last
// of duplicate keys and, through Unmarshal, takes a body's first value
// only when it is followed by garbage elsewhere in the library. Each
// refusal is a SCIM error that names the cap.

// filterDepth returns how deeply a filter or path nests parentheses and
// brackets, outside string literals. "not" needs parentheses in the
// grammar (RFC 7644 §3.4.2.2), so this is the parser's recursion depth.
func filterDepth(s string) int {
	depth, deepest := 0, 0
	inString, escaped := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '(', '[':
			depth++
			deepest = max(deepest, depth)
		case ')', ']':
			depth = max(depth-1, 0)
		}
	}
	return deepest
}

// checkExpression bounds a filter or PATCH path before it is parsed. what
// names it in the error; scimType is invalidFilter or invalidPath.
func (l Limits) checkExpression(what, s string, base scimerrors.ScimError) error {
	if len(s) > l.MaxFilterLength {
		base.Detail = fmt.Sprintf("The %s is %d bytes long; at most %d are accepted.", what, len(s), l.MaxFilterLength)
		return base
	}
	if d := filterDepth(s); d > l.MaxFilterDepth {
		base.Detail = fmt.Sprintf("The %s nests parentheses or brackets %d deep; at most %d levels are accepted.", what, d, l.MaxFilterDepth)
		return base
	}
	return nil
}

func (l Limits) checkFilter(s string) error {
	return l.checkExpression("filter", s, scimerrors.ScimErrorInvalidFilter)
}

func (l Limits) checkPath(s string) error {
	return l.checkExpression("PATCH path", s, scimerrors.ScimErrorInvalidPath)
}

// checkAttributeList bounds an attributes or excludedAttributes value
// (comma-separated attribute paths, each parsed on its own).
func (l Limits) checkAttributeList(name string, list []string) error {
	total := 0
	for _, a := range list {
		total += len(a) + 1
	}
	if total > l.MaxFilterLength {
		return badValue(fmt.Sprintf("%s is %d bytes long; at most %d are accepted.", name, total, l.MaxFilterLength))
	}
	for _, a := range list {
		if filterDepth(a) > 0 {
			return badValue(name + " lists attribute names, without filters.")
		}
	}
	return nil
}

// maxHeaderBytes bounds a SCIM request's header fields, which hold a
// bearer token and a few standard fields. Larger ones than the HTTP
// server's own limit (Caddy's max_header_size, 1 MiB by default) never
// get here: the server answers them itself, in plain text.
const maxHeaderBytes = 16 << 10

// checkQuery bounds the URL, the header fields and the query parameters
// that reach a parser.
func (l Limits) checkQuery(r *http.Request) error {
	if n := len(r.URL.EscapedPath()) + len(r.URL.RawQuery); n > l.MaxURLLength {
		return scimerrors.ScimError{Status: http.StatusRequestURITooLong,
			Detail: fmt.Sprintf("The request URL is %d bytes long; at most %d are accepted.", n, l.MaxURLLength)}
	}
	n := 0
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	if n > maxHeaderBytes {
		return scimerrors.ScimError{Status: http.StatusRequestHeaderFieldsTooLarge,
			Detail: fmt.Sprintf("The request's header fields are %d bytes long; at most %d are accepted.", n, maxHeaderBytes)}
	}
	q, err := urlQuery(r)
	if err != nil {
		return err
	}
	if f := q.Get("filter"); f != "" {
		if err := l.checkFilter(f); err != nil {
			return err
		}
	}
	if s := q.Get("sortBy"); s != "" {
		if err := l.checkAttributeList("sortBy", []string{s}); err != nil {
			return err
		}
	}
	for _, name := range []string{"attributes", "excludedAttributes"} {
		if v := q.Get(name); v != "" {
			if err := l.checkAttributeList(name, strings.Split(v, ",")); err != nil {
				return err
			}
		}
	}
	return nil
}

// urlQuery parses the query, refusing one that does not parse rather than
// reading the part that does (as URL.Query does), and repeated parameters
// the library would read only the first of.
func urlQuery(r *http.Request) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, scimerrors.ScimError{Status: http.StatusBadRequest, ScimType: scimerrors.ScimTypeInvalidSyntax, Detail: "The query string is malformed."}
	}
	for k, v := range q {
		if len(v) > 1 {
			return nil, scimerrors.ScimError{Status: http.StatusBadRequest, ScimType: scimerrors.ScimTypeInvalidSyntax, Detail: "The query parameter " + strconv.Quote(k) + " is given more than once."}
		}
	}
	return q, nil
}

// checkContentType accepts the SCIM media type and plain JSON (RFC 7644
// §3.1: servers may accept application/json), in UTF-8 only.
func checkContentType(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	ok := err == nil && (mt == "application/scim+json" || mt == "application/json")
	if cs, has := params["charset"]; ok && has && !strings.EqualFold(cs, "utf-8") {
		ok = false
	}
	if !ok {
		return scimerrors.ScimError{Status: http.StatusUnsupportedMediaType,
			Detail: "Send the body as application/scim+json (or application/json), in UTF-8."}
	}
	return nil
}

// readBody reads a request body of at most l.MaxRequestBytes.
func (l Limits) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > l.MaxRequestBytes {
		return nil, l.tooLarge()
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, l.MaxRequestBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, l.tooLarge()
		}
		return nil, scimerrors.ScimErrorInvalidSyntax
	}
	return body, nil
}

func (l Limits) tooLarge() error {
	return scimerrors.ScimError{Status: http.StatusRequestEntityTooLarge,
		Detail: "Request body too large (at most " + strconv.FormatInt(l.MaxRequestBytes, 10) + " bytes)."}
}

// maxObjectNames bounds the members of one JSON object: SCIM objects
// have a few dozen at most (the User schema has 21 attributes), and a
// path-less PATCH value as many as it changes.
const maxObjectNames = 256

// checkJSON requires body to be exactly one JSON value in valid UTF-8 (no
// lone surrogate escapes either), without duplicate object keys, nested
// at most l.MaxJSONDepth deep, and with no string longer than a filter
// may be (values are held to their attribute's own limits later). The
// validation is jsontext's (the reference implementation of
// encoding/json/v2), which rejects invalid UTF-8 and duplicate names by
// default; keys are also compared ignoring ASCII case, since SCIM
// attribute names are case-insensitive (RFC 7643 §2.1) and the library
// would keep either of "userName" and "USERNAME".
func (l Limits) checkJSON(body []byte) error {
	bad := func(detail string) error {
		e := scimerrors.ScimErrorInvalidSyntax
		e.Detail = detail
		return e
	}
	maxString := max(l.MaxStringLength, l.MaxFilterLength)
	dec := jsontext.NewDecoder(bytes.NewReader(body))
	// The names seen so far in each open object (nil for arrays). Most
	// objects have a few names, so a slice searched linearly is cheaper
	// than a map.
	var seen [][]string
	for {
		tok, err := dec.ReadToken()
		if err == io.EOF {
			if dec.InputOffset() == 0 || len(seen) > 0 {
				return bad("The request body is empty or incomplete.")
			}
			return nil
		}
		if err != nil {
			return bad("The request body is not valid JSON in UTF-8: " + jsonErrorText(err))
		}
		depth := dec.StackDepth()
		if depth > l.MaxJSONDepth {
			return bad(fmt.Sprintf("The request body nests objects and arrays more than %d deep.", l.MaxJSONDepth))
		}
		switch tok.Kind() {
		case '{':
			seen = append(seen, []string{})
		case '[':
			seen = append(seen, nil)
		case '}', ']':
			seen = seen[:len(seen)-1]
		case '0':
			// encoding/json, which decodes the body next, refuses a
			// number beyond float64's range: refuse it here first.
			if _, err := strconv.ParseFloat(tok.String(), 64); err != nil {
				return bad("A number in the request body is out of range: " + strconv.Quote(tok.String()) + ".")
			}
		case '"':
			s := tok.String()
			if len(s) > maxString {
				return stringTooLong{badValue(fmt.Sprintf("A string in the request body is %d bytes long; at most %d are accepted.", len(s), maxString))}
			}
			// A string read where a name is due is a name: jsontext
			// knows (it is at an odd position of its object).
			if kind, n := dec.StackIndex(depth); kind == '{' && n%2 == 1 {
				k := asciiLower(s)
				names := seen[len(seen)-1]
				if slices.Contains(names, k) {
					return bad("The request body has the member " + strconv.Quote(s) + " twice in one object (names are case-insensitive).")
				}
				if len(names) >= maxObjectNames {
					return bad(fmt.Sprintf("An object in the request body has more than %d members.", maxObjectNames))
				}
				seen[len(seen)-1] = append(names, k)
			}
		}
		if depth == 0 {
			// The body's value is complete: only whitespace may follow.
			if _, err := dec.ReadToken(); err != io.EOF {
				return bad("The request body has data after its JSON value.")
			}
			return nil
		}
	}
}

// jsonErrorText is jsontext's error without its package prefix, which
// says where in the body the problem is.
func jsonErrorText(err error) string {
	return strings.TrimPrefix(err.Error(), "jsontext: ")
}

// asciiLower lower-cases ASCII letters only: attribute names are ASCII,
// and Unicode case folding would let other letters collide.
func asciiLower(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			if b == nil {
				b = []byte(s)
			}
			b[i] = c + 'a' - 'A'
		}
	}
	if b == nil {
		return s
	}
	return string(b)
}

// checkBodyExpressions bounds the filters and paths inside a body before
// the library (and normalizeRequest) parse them: a .search request's
// filter, sortBy and attribute lists, and PATCH operations' paths and the
// attribute paths that name the members of a path-less value. The body
// has passed checkJSON.
func (l Limits) checkBodyExpressions(method, sub string, body []byte) error {
	switch {
	case method == http.MethodPost && strings.HasSuffix(sub, "/.search"):
		var sr struct {
			Filter             any `json:"filter"`
			SortBy             any `json:"sortBy"`
			Attributes         any `json:"attributes"`
			ExcludedAttributes any `json:"excludedAttributes"`
		}
		if json.Unmarshal(body, &sr) != nil {
			return nil // not an object: the library refuses it
		}
		if f, ok := sr.Filter.(string); ok {
			if err := l.checkFilter(f); err != nil {
				return err
			}
		}
		if s, ok := sr.SortBy.(string); ok {
			if err := l.checkAttributeList("sortBy", []string{s}); err != nil {
				return err
			}
		}
		for name, v := range map[string]any{"attributes": sr.Attributes, "excludedAttributes": sr.ExcludedAttributes} {
			list, _ := v.([]any)
			var names []string
			for _, el := range list {
				if s, ok := el.(string); ok {
					names = append(names, s)
				}
			}
			if err := l.checkAttributeList(name, names); err != nil {
				return err
			}
		}
	case method == http.MethodPatch:
		// Values stay raw: a membership update holds thousands of them.
		var m map[string]json.RawMessage
		if json.Unmarshal(body, &m) != nil {
			return nil
		}
		var ops []map[string]json.RawMessage
		if json.Unmarshal(m[findRawKey(m, "Operations")], &ops) != nil {
			return nil
		}
		for _, op := range ops {
			var p string
			if json.Unmarshal(op[findRawKey(op, "path")], &p) == nil {
				if err := l.checkPath(p); err != nil {
					return err
				}
			}
			var values map[string]json.RawMessage
			if json.Unmarshal(op[findRawKey(op, "value")], &values) == nil {
				for k := range values {
					if err := l.checkPath(k); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// findRawKey is findKey for undecoded members.
func findRawKey(m map[string]json.RawMessage, name string) string {
	if _, ok := m[name]; ok {
		return name
	}
	for k := range m {
		if strings.EqualFold(k, name) {
			return k
		}
	}
	return ""
}

// checkBody reads and checks a POST, PUT or PATCH body: its media type,
// size, JSON well-formedness and the expressions in it.
func (l Limits) checkBody(w http.ResponseWriter, r *http.Request, sub string) ([]byte, error) {
	if err := checkContentType(r); err != nil {
		return nil, err
	}
	body, err := l.readBody(w, r)
	if err != nil {
		return nil, err
	}
	if err := l.checkJSON(body); err != nil {
		// A filter or path too long is better reported as such.
		if errors.As(err, new(stringTooLong)) {
			if perr := l.checkBodyExpressions(r.Method, sub, body); perr != nil {
				return nil, perr
			}
		}
		return nil, err
	}
	if err := l.checkBodyExpressions(r.Method, sub, body); err != nil {
		return nil, err
	}
	return body, nil
}

// stringTooLong is checkJSON's refusal of a long string, which is well-formed
// JSON (so the expressions in the body can still be looked at).
type stringTooLong struct{ scimerrors.ScimError }

func (e stringTooLong) Unwrap() error { return e.ScimError }

// asScimError returns the SCIM error err is (every error of this file is
// one), or a 500.
func asScimError(err error) scimerrors.ScimError {
	var se scimerrors.ScimError
	if errors.As(err, &se) {
		return se
	}
	return scimerrors.ScimErrorInternal
}

// badSyntax is a 400 invalidSyntax with a specific explanation.
func badSyntax(detail string) scimerrors.ScimError {
	e := scimerrors.ScimErrorInvalidSyntax
	e.Detail = detail
	return e
}
