package orgs

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/ssogate/ssogate/store"
)

// adminWrites are the operator admin API requests FuzzAdminAPI sends its
// body to; {x} is replaced by the fuzzed path segment.
var adminWrites = []struct{ method, path string }{
	{http.MethodPost, "/orgs"},
	{http.MethodPatch, "/orgs/acme"},
	{http.MethodPost, "/orgs/acme/domains"},
	{http.MethodPost, "/orgs/acme/domains/{x}/verify"},
	{http.MethodPut, "/orgs/acme/idp"},
	{http.MethodPut, "/orgs/acme/admin-group"},
	{http.MethodPut, "/orgs/acme/steps/{x}"},
	{http.MethodPost, "/orgs/acme/local-users"},
	{http.MethodPut, "/orgs/acme/backup-login"},
	{http.MethodPost, "/orgs/acme/activate"},
	{http.MethodPost, "/orgs/{x}/scim-token"},
	{http.MethodDelete, "/orgs/acme/domains/{x}"},
	{http.MethodGet, "/orgs/acme/audit?limit={x}"},
	{http.MethodGet, "/orgs/acme/users?role={x}&status={x}"},
}

// noNetwork fails every request: a fuzzed metadata_url must not reach out.
type noNetwork struct{}

func (noNetwork) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("fuzzing: no network")
}

// adminSnapshot is what a refused request must leave as it was (the audit
// trail aside: refusals are recorded there on purpose).
type adminSnapshot struct {
	orgs    []*store.Org
	domains []*store.Domain
	users   int
}

func takeAdminSnapshot(t *testing.T, st *store.Store) adminSnapshot {
	var s adminSnapshot
	var err error
	if s.orgs, err = st.ListOrgs(); err != nil {
		t.Fatal(err)
	}
	if s.domains, err = st.ListDomains("acme"); err != nil {
		t.Fatal(err)
	}
	if s.users, err = st.CountUsers("acme"); err != nil {
		t.Fatal(err)
	}
	return s
}

// FuzzAdminAPI sends arbitrary JSON bodies and path segments to the
// operator admin API over a real store. Invariants: no panic; never a 5xx;
// a refused request (4xx) writes nothing but its audit event; every
// answer is a JSON object or array.
func FuzzAdminAPI(f *testing.F) {
	st, err := store.Open(f.TempDir(), store.Options{GCInterval: -1})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = st.Close() })
	svc := New(st, func(id string) SPURLs {
		return SPURLs{EntityID: testBase + id, ACSURL: testBase + id + "/acs", MetadataURL: testBase + id + "/metadata"}
	}, zap.NewNop())
	// Nothing listens there: verifying without force fails fast.
	svc.Resolver = NewResolver("127.0.0.1:9")
	svc.HTTPClient = &http.Client{Transport: noNetwork{}}
	h := svc.AdminHandler("/sso")
	call := func(method, path string, body []byte) (int, []byte) {
		var r *http.Request
		if body == nil {
			r = httptest.NewRequest(method, "/sso"+path, nil)
		} else {
			r = httptest.NewRequest(method, "/sso"+path, bytes.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code, w.Body.Bytes()
	}
	// A real setup to start from, made through the API itself.
	for _, s := range []struct {
		method, path, body string
	}{
		{"POST", "/orgs", `{"id":"acme","name":"Acme","owner_email":"owner@acme.test"}`},
		{"POST", "/orgs/acme/domains", `{"name":"acme.test"}`},
		{"POST", "/orgs/acme/domains/acme.test/verify", `{"force":true}`},
		{"PUT", "/orgs/acme/admin-group", `{"name":"Admins","id":"00g1"}`},
		{"POST", "/orgs/acme/local-users", `{"email":"helper@acme.test","role":"admin"}`},
	} {
		if status, out := call(s.method, s.path, []byte(s.body)); status >= 300 {
			f.Fatalf("setting up: %s %s: %d %s", s.method, s.path, status, out)
		}
	}

	seeds := []struct {
		which int
		x     string
		body  string
	}{
		{0, "", `{"id":"globex","name":"Globex","owner_email":"owner@globex.test"}`},
		{0, "", `{"id":"A","name":"","owner_email":"x"}`},
		{1, "", `{"name":"Acme Corp","allow_idp_initiated":true}`},
		{1, "", `{"name":null}`},
		{2, "", `{"name":"xn--bcher-kva.example"}`},
		{2, "", `{"name":"Bücher.Example."}`},
		{3, "acme.test", `{"force":false}`},
		{3, "acme.test", `{}`},
		{4, "", `{"entity_id":"https://idp.example.com","sso_url":"https://idp.example.com/sso","certificates":["-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"]}`},
		{4, "", `{"metadata_xml":"<EntityDescriptor xmlns=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"x\"/>"}`},
		{4, "", `{"metadata_url":"https://idp.example.com/metadata"}`},
		{5, "", `{"name":"Admins","id":"00g2"}`},
		{6, "register", `{"done":true}`},
		{6, "backup", `{"done":true}`},
		{7, "", `{"email":"new@acme.test","role":"owner","display_name":"New"}`},
		{8, "", `{"user":"helper@acme.test"}`},
		{9, "", ``},
		{10, "acme", `{}`},
		{11, "acme.test", ``},
		{12, "5", ``},
		{13, "admin", ``},
		{0, "", `{"id":"x","id":"y"}`},
		{0, "", `[1,2]`},
		{0, "", `{"id":"ok-id","name":"n","owner_email":"o@x.test","extra":1}`},
	}
	for _, s := range seeds {
		f.Add(uint8(s.which), s.x, []byte(s.body))
	}

	f.Fuzz(func(t *testing.T, which uint8, x string, body []byte) {
		w := adminWrites[int(which)%len(adminWrites)]
		path := w.path
		if strings.Contains(path, "?") {
			path = strings.ReplaceAll(path, "{x}", url.QueryEscape(x))
		} else {
			path = strings.ReplaceAll(path, "{x}", url.PathEscape(x))
		}
		if w.method == http.MethodGet || w.method == http.MethodDelete {
			body = nil
		}
		before := takeAdminSnapshot(t, st)
		status, out := call(w.method, path, body)
		if status >= 500 {
			t.Fatalf("%s %s: %d\n%s", w.method, path, status, out)
		}
		if len(out) > 0 && !json.Valid(out) {
			t.Fatalf("%s %s: %d with a body that is not JSON: %q", w.method, path, status, out)
		}
		if status < 400 {
			return
		}
		if after := takeAdminSnapshot(t, st); !reflect.DeepEqual(before, after) {
			t.Fatalf("%s %s: refused with %d but the store changed\n%s", w.method, path, status, out)
		}
	})
}
