package scim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/ssogate/ssogate/store"
	"github.com/ssogate/ssogate/store/pgtest"
)

const (
	testBase   = "https://gw.example.com"
	testPrefix = "/sso"
)

// env is a SCIM server over a real store in a temporary directory, served
// by a real HTTP server, with two organizations that each have a token.
type env struct {
	t      testing.TB
	store  *store.Store
	srv    *Server
	http   *httptest.Server
	tokens map[string]string // org → token
	clock  *fakeClock
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newEnv(t testing.TB, tweak ...func(*Config)) *env {
	t.Helper()
	return newEnvWith(t, store.Options{}, nil, tweak...)
}

// postgresBackend opens a PostgreSQL backend on a fresh schema of the
// test server (dsn, schema); with a schema of "" it takes a new one.
// Several backends on one schema are several replicas.
func postgresBackend(t testing.TB, dsn, schema string) store.Backend {
	t.Helper()
	if schema == "" {
		dsn, schema = pgtest.Schema(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pg, err := store.OpenPostgres(ctx, store.PostgresOptions{DSN: dsn, Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	return pg
}

// newEnvWith is newEnv with store options (its Logger and GCInterval are
// the test's) on backend b (nil: Badger in a temporary directory).
func newEnvWith(t testing.TB, opts store.Options, b store.Backend, tweak ...func(*Config)) *env {
	t.Helper()
	opts.Logger, opts.GCInterval = zaptest.NewLogger(t), -1
	var st *store.Store
	var err error
	if b != nil {
		st, err = store.OpenBackend(b, opts)
	} else {
		st, err = store.Open(t.TempDir(), opts)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	e := &env{t: t, store: st, tokens: map[string]string{}}
	for _, org := range []string{"acme", "globex"} {
		tok := "token-of-" + org + "-0123456789abcdef0123456789abcdef"
		sum := sha256.Sum256([]byte(tok))
		if err := st.CreateOrg(&store.Org{ID: org, Name: org, SCIMTokenHash: sum[:], SCIMTokenCreated: time.Now()}); err != nil {
			t.Fatal(err)
		}
		e.tokens[org] = tok
	}
	e.clock = &fakeClock{now: time.Now()}
	cfg := Config{
		Store:    st,
		BaseURL:  testBase,
		Prefix:   testPrefix,
		ClientIP: func(r *http.Request) string { return "192.0.2.1" },
		Logger:   zaptest.NewLogger(t),
		Now:      e.clock.Now,
	}
	for _, f := range tweak {
		f(&cfg)
	}
	e.srv, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.http = httptest.NewServer(e.srv)
	t.Cleanup(e.http.Close)
	return e
}

// resp is a response with its body decoded as JSON when it is.
type resp struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

// call sends a request as org (with its token) to path below the org's
// SCIM base URL. body is sent as is if it is a string, JSON-encoded
// otherwise.
func (e *env) call(org, method, path string, body any) resp {
	e.t.Helper()
	return e.callWith(e.tokens[org], method, testPrefix+"/scim/"+org+"/v2"+path, body)
}

func (e *env) callWith(token, method, fullPath string, body any) resp {
	e.t.Helper()
	var rdr io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rdr = strings.NewReader(b)
	case []byte:
		rdr = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rdr = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.http.URL+fullPath, rdr)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rdr != nil {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	return e.do(req)
}

// do sends req and reads the response.
func (e *env) do(req *http.Request) resp {
	e.t.Helper()
	res, err := e.http.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	r := resp{status: res.StatusCode, header: res.Header, raw: raw}
	if len(raw) > 0 {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		_ = d.Decode(&r.body)
	}
	return r
}

// must requires a status and returns the response.
func (e *env) must(status int, org, method, path string, body any) resp {
	e.t.Helper()
	r := e.call(org, method, path, body)
	if r.status != status {
		e.t.Fatalf("%s %s as %s: status %d, want %d\n%s", method, path, org, r.status, status, r.raw)
	}
	return r
}

// scimError checks a SCIM error response.
func (e *env) scimError(r resp, status int, scimType string) {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/scim+json" {
		e.t.Errorf("error Content-Type %q", ct)
	}
	schemas, _ := r.body["schemas"].([]any)
	if len(schemas) != 1 || schemas[0] != "urn:ietf:params:scim:api:messages:2.0:Error" {
		e.t.Errorf("not a SCIM error body: %s", r.raw)
	}
	if r.body["status"] != jsonStatus(status) {
		e.t.Errorf("error status %v, want %q", r.body["status"], jsonStatus(status))
	}
	if got, _ := r.body["scimType"].(string); got != scimType {
		e.t.Errorf("scimType %q, want %q: %s", got, scimType, r.raw)
	}
}

func jsonStatus(status int) string {
	b, _ := json.Marshal(status)
	return string(b)
}

// createUser provisions a user through the API and returns its id.
func (e *env) createUser(org, userName string, extra map[string]any) string {
	e.t.Helper()
	body := map[string]any{
		"schemas":  []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
		"userName": userName,
		"active":   true,
	}
	for k, v := range extra {
		body[k] = v
	}
	r := e.must(http.StatusCreated, org, http.MethodPost, "/Users", body)
	id, _ := r.body["id"].(string)
	if id == "" {
		e.t.Fatalf("no id in %s", r.raw)
	}
	return id
}

// createGroup provisions a group and returns its id.
func (e *env) createGroup(org, name string, members ...string) string {
	e.t.Helper()
	ms := []map[string]string{}
	for _, m := range members {
		ms = append(ms, map[string]string{"value": m})
	}
	r := e.must(http.StatusCreated, org, http.MethodPost, "/Groups", map[string]any{
		"schemas":     []string{"urn:ietf:params:scim:schemas:core:2.0:Group"},
		"displayName": name,
		"members":     ms,
	})
	id, _ := r.body["id"].(string)
	return id
}

func patchOp(ops ...map[string]any) map[string]any {
	return map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"}, "Operations": ops}
}

// resources returns a list response's resources.
func resources(t *testing.T, r resp) []map[string]any {
	t.Helper()
	list, ok := r.body["Resources"].([]any)
	if !ok {
		t.Fatalf("Resources is not an array: %s", r.raw)
	}
	out := make([]map[string]any, len(list))
	for i, el := range list {
		out[i], _ = el.(map[string]any)
	}
	return out
}

func num(v any) int {
	n, _ := v.(json.Number)
	i, _ := n.Int64()
	return int(i)
}

// memberIDs returns a group resource's member values.
func memberIDs(g map[string]any) []string {
	var ids []string
	ms, _ := g["members"].([]any)
	for _, m := range ms {
		mm, _ := m.(map[string]any)
		id, _ := mm["value"].(string)
		ids = append(ids, id)
	}
	return ids
}
