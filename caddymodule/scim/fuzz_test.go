package scim

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/scim2/filter-parser/v2"

	"go.uber.org/zap"

	"github.com/ssogate/ssogate/store"
)

// fuzzEnv is a SCIM server over a real store for the fuzz targets, called
// in process (no HTTP server, no test logger: a fuzz target may not log
// through *testing.F, and Badger logs from its own goroutines).
type fuzzEnv struct {
	store *store.Store
	srv   *Server
	token string
	user  string // id of a user of "acme" that bodies may change
	group string // id of a group of "acme" with that user as member
}

func newFuzzEnv(f *testing.F) *fuzzEnv {
	f.Helper()
	st, err := store.Open(f.TempDir(), store.Options{GCInterval: -1})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = st.Close() })
	e := &fuzzEnv{store: st, token: "token-of-acme-0123456789abcdef0123456789abcdef"}
	for _, org := range []string{"acme", "globex"} {
		sum := sha256.Sum256([]byte("token-of-" + org + "-0123456789abcdef0123456789abcdef"))
		if err := st.CreateOrg(&store.Org{ID: org, Name: org, SCIMTokenHash: sum[:], SCIMTokenCreated: time.Now()}); err != nil {
			f.Fatal(err)
		}
	}
	e.srv, err = New(Config{Store: st, BaseURL: testBase, Prefix: testPrefix, Logger: zap.NewNop()})
	if err != nil {
		f.Fatal(err)
	}
	status, body := e.do(http.MethodPost, "/Users", []byte(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"fuzz.target@acme.test","externalId":"00u-target","active":true,"emails":[{"value":"fuzz.target@acme.test","primary":true}]}`))
	e.user = idOf(f, status, body)
	status, body = e.do(http.MethodPost, "/Groups", []byte(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Fuzz Admins","members":[{"value":"`+e.user+`"}]}`))
	e.group = idOf(f, status, body)
	return e
}

func idOf(f *testing.F, status int, body []byte) string {
	var v struct{ ID string }
	if status != http.StatusCreated || json.Unmarshal(body, &v) != nil || v.ID == "" {
		f.Fatalf("creating a fixture: %d %s", status, body)
	}
	return v.ID
}

// do sends a request as acme, with its token.
func (e *fuzzEnv) do(method, path string, body []byte) (int, []byte) {
	var r *http.Request
	if body != nil {
		r = httptest.NewRequest(method, testPrefix+"/scim/acme/v2"+path, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/scim+json")
	} else {
		r = httptest.NewRequest(method, testPrefix+"/scim/acme/v2"+path, nil)
	}
	r.Header.Set("Authorization", "Bearer "+e.token)
	w := httptest.NewRecorder()
	e.srv.ServeHTTP(w, r)
	return w.Code, w.Body.Bytes()
}

// snapshot is what a refused write must leave as it was.
type snapshot struct {
	users, groups, otherUsers, otherGroups int
	user                                   *store.User
	group                                  *store.Group
}

func (e *fuzzEnv) snapshot(t *testing.T) snapshot {
	var s snapshot
	var err error
	if s.users, err = e.store.CountUsers("acme"); err != nil {
		t.Fatal(err)
	}
	if _, s.groups, err = e.store.ListGroups("acme", 0, 1); err != nil {
		t.Fatal(err)
	}
	if s.otherUsers, err = e.store.CountUsers("globex"); err != nil {
		t.Fatal(err)
	}
	if _, s.otherGroups, err = e.store.ListGroups("globex", 0, 1); err != nil {
		t.Fatal(err)
	}
	if s.user, err = e.store.GetUser("acme", e.user); err != nil {
		t.Fatal(err)
	}
	if s.group, err = e.store.GetGroup("acme", e.group); err != nil {
		t.Fatal(err)
	}
	return s
}

// scimWrites are the writes FuzzSCIMWrite sends its body with.
var scimWrites = []struct{ method, path string }{
	{http.MethodPost, "/Users"},
	{http.MethodPut, "/Users/{user}"},
	{http.MethodPatch, "/Users/{user}"},
	{http.MethodPost, "/Groups"},
	{http.MethodPut, "/Groups/{group}"},
	{http.MethodPatch, "/Groups/{group}"},
}

// FuzzSCIMWrite sends arbitrary bodies to the user and group writes
// (create, replace, patch). Invariants: no panic; never a 5xx; a refused
// write (4xx) changes nothing; the other organization is never touched.
func FuzzSCIMWrite(f *testing.F) {
	e := newFuzzEnv(f)
	// Seeds: the Okta and Entra ID requests shipped with the SCIM library
	// are in testdata/fuzz/FuzzSCIMWrite; a few of our own follow.
	f.Add(uint8(2), []byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}`))
	f.Add(uint8(2), []byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"emails[type eq \"work\"].value","value":"x@acme.test"}]}`))
	f.Add(uint8(5), []byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove","path":"members[value eq \"nobody\"]"}]}`))
	f.Add(uint8(5), []byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"value":"nobody"}]}]}`))
	f.Add(uint8(1), []byte(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"fuzz.target@acme.test","name":{"givenName":"A"},"active":"yes"}`))
	f.Add(uint8(0), []byte(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],"userName":"e@acme.test","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"x"}}}`))
	f.Add(uint8(3), []byte(`{"displayName":"","members":[null]}`))
	f.Add(uint8(0), []byte(`[]`))
	f.Add(uint8(0), []byte(`{"userName":"\u0000"}`))

	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		w := scimWrites[int(which)%len(scimWrites)]
		path := strings.NewReplacer("{user}", e.user, "{group}", e.group).Replace(w.path)
		before := e.snapshot(t)
		status, out := e.do(w.method, path, body)
		if status >= 500 {
			t.Fatalf("%s %s: %d for a malformed body\n%s", w.method, path, status, out)
		}
		after := e.snapshot(t)
		if after.otherUsers != before.otherUsers || after.otherGroups != before.otherGroups {
			t.Fatalf("%s %s wrote into the other organization", w.method, path)
		}
		if status < 400 {
			return
		}
		if !reflect.DeepEqual(before, after) {
			t.Fatalf("%s %s: refused with %d but changed the store:\nbefore %+v\nafter  %+v\n%s", w.method, path, status, before, after, out)
		}
	})
}

// FuzzSCIMFilter sends arbitrary filters (with sort and paging) to the
// user and group lists. Invariants: no panic; 200 or 400 (414 for a URL
// over the length cap), never a 5xx.
func FuzzSCIMFilter(f *testing.F) {
	e := newFuzzEnv(f)
	for _, s := range []string{
		`userName eq "fuzz.target@acme.test"`,
		`externalId eq "00u-target"`,
		`displayName eq "Fuzz Admins"`,
		`emails[type eq "work" and value co "@acme.test"]`,
		`userName sw "fuzz" and not (active eq false)`,
		`meta.lastModified gt "2011-05-13T04:42:34Z"`,
		`members[value eq "x"] or id pr`,
		`name.givenName ew "a" or title lt 3`,
		`userName eq`,
		`(((`,
		`emails[type eq "work"].value eq "fuzz.target@acme.test"`,
		`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "x" and userName pr`,
		`urn:ietf:params:scim:schemas:core:2.0:User:userName eq "a"`,
		strings.Repeat("(", 17) + `userName eq "a"` + strings.Repeat(")", 17),
		strings.Repeat("not(", 16) + `userName eq "a"` + strings.Repeat(")", 16),
		`emails[value eq "(((((((((((((((((((("]`,
	} {
		f.Add(s, "1", "10")
	}
	f.Add("", "0", "-1")
	f.Add("", "999999999999999999999", "1")
	f.Fuzz(func(t *testing.T, filter, startIndex, count string) {
		q := url.Values{"filter": {filter}, "startIndex": {startIndex}, "count": {count}}
		for _, res := range []string{"/Users", "/Groups"} {
			path := res + "?" + q.Encode()
			status, out := e.do(http.MethodGet, path, nil)
			// The cap counts the whole URL, prefix and all, so a path
			// somewhat under it may be refused too.
			tooLong := status == http.StatusRequestURITooLong && len(path) > DefaultMaxURLLength-256
			if status != http.StatusOK && status != http.StatusBadRequest && !tooLong {
				t.Fatalf("GET %s?%s: %d\n%s", res, q.Encode(), status, out)
			}
			if !json.Valid(out) {
				t.Fatalf("GET %s?%s: body is not JSON: %q", res, q.Encode(), out)
			}
		}
	})
}

// FuzzSCIMSearch sends arbitrary filters, attribute lists and sortBy in
// POST .search bodies. Invariants: no panic (a stack overflow would end
// the fuzzer's process); 200 or a 4xx, never a 5xx; always JSON.
func FuzzSCIMSearch(f *testing.F) {
	e := newFuzzEnv(f)
	f.Add(`userName eq "fuzz.target@acme.test"`, "userName,emails.value", "")
	f.Add(`displayName eq "Fuzz Admins"`, "", "displayName")
	f.Add(strings.Repeat("(", 16)+`id pr`+strings.Repeat(")", 16), "members", "meta.created")
	f.Add(strings.Repeat("not(", 5000), "", "")
	f.Add(`emails[type eq "work"] and (name.givenName sw "a" or not(active eq true))`, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "")
	f.Fuzz(func(t *testing.T, filter, attributes, sortBy string) {
		body, err := json.Marshal(map[string]any{
			"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:SearchRequest"},
			"filter":     filter,
			"attributes": strings.Split(attributes, ","),
			"sortBy":     sortBy,
		})
		if err != nil {
			t.Skip()
		}
		for _, res := range []string{"/Users/.search", "/Groups/.search"} {
			status, out := e.do(http.MethodPost, res, body)
			if status >= 500 || (status != http.StatusOK && status < 400) {
				t.Fatalf("POST %s %s: %d\n%s", res, body, status, out)
			}
			if !json.Valid(out) {
				t.Fatalf("POST %s: body is not JSON: %q", res, out)
			}
		}
	})
}

// FuzzCheckJSON holds the body check to encoding/json, which the library
// decodes with afterwards: what the check accepts is one valid JSON value
// in valid UTF-8 that encoding/json decodes without error, nested no
// deeper than the cap; nothing encoding/json refuses is accepted.
func FuzzCheckJSON(f *testing.F) {
	l := Limits{}.WithDefaults()
	for _, s := range []string{
		`{"userName":"a@b.c"}`, `{"a":1,"A":2}`, `{"a":1} x`, `[]`, `"\ud800"`, "\xff", `{"a":[[[[{}]]]]}`,
		`{"a":"\u00e9","b":{"c":null,"d":[true,false,1e5]}}`, ` {} `, ``, `{"a":1}{"b":2}`, `{"a`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		err := l.checkJSON(body)
		var v any
		stdErr := json.Unmarshal(body, &v)
		if err == nil {
			if stdErr != nil {
				t.Fatalf("accepted %q, which encoding/json refuses: %v", body, stdErr)
			}
			if !utf8.Valid(body) {
				t.Fatalf("accepted invalid UTF-8 %q", body)
			}
			if d := jsonDepth(v); d > l.MaxJSONDepth {
				t.Fatalf("accepted depth %d", d)
			}
		}
	})
}

func jsonDepth(v any) int {
	d := 0
	switch v := v.(type) {
	case map[string]any:
		for _, el := range v {
			d = max(d, jsonDepth(el))
		}
		return d + 1
	case []any:
		for _, el := range v {
			d = max(d, jsonDepth(el))
		}
		return d + 1
	}
	return 0
}

// FuzzFilterDepth: filterDepth bounds the parser's nesting, so any
// filter of at most MaxFilterDepth that the parser accepts parses
// without trouble, and the check never lets a deeper one through.
func FuzzFilterDepth(f *testing.F) {
	l := Limits{}.WithDefaults()
	for _, s := range []string{`a eq "("`, `(a eq "\"(")`, `a[b eq 1]`, `not(not(a pr))`, strings.Repeat("(", 20)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if l.checkFilter(s) != nil {
			return
		}
		// Within the caps: the parser must come back (it recurses once
		// per level, so it cannot run away).
		_, _ = filter.ParseFilter([]byte(s))
		_, _ = filter.ParsePath([]byte(s))
	})
}

// FuzzNormalizeFilter: the rewrite of Entra ID's filters ends, never
// panics, and changes only filters that have a "]." outside a string.
func FuzzNormalizeFilter(f *testing.F) {
	for _, s := range []string{`emails[type eq "work"].value eq "x@y"`, `a[b eq "]."].c pr`, `].`, `a["`, `emails[type eq "w"].value eq "\"".x`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := normalizeFilter(s)
		if closingBeforeDot(s) < 0 && out != s {
			t.Fatalf("normalizeFilter(%q) = %q", s, out)
		}
	})
}
