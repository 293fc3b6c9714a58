package caddymodule

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/ssogate/ssogate/caddymodule/session"
	"github.com/ssogate/ssogate/store"
)

// benchGateway is a Gateway wired by hand to a store in a temp dir, with
// one active org, one user and a signed-in session, so the per-request
// path can be measured without HTTP around it.
func benchGateway(b *testing.B) (*Gateway, *http.Cookie) {
	b.Helper()
	st, err := store.Open(b.TempDir(), store.Options{GCInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	base, _ := url.Parse("https://app.example.com")
	app := &App{baseURL: base, shared: &appState{}}
	sm, err := session.New(session.Config{
		Store: st, Keys: [][]byte{[]byte("0123456789abcdef0123456789abcdef")},
		Secure: true, Lifetime: 8 * time.Hour, Idle: time.Hour,
	})
	if err != nil {
		b.Fatal(err)
	}
	g := &Gateway{Prefix: "/sso", app: app, logger: zap.NewNop(), lazy: &gatewayState{}}
	g.headers, _ = resolveHeaders("", nil)
	g.stripped = strippedHeaders(g.headers)
	g.lazy.once.Do(func() { g.lazy.store, g.lazy.sessions = st, sm })

	if err := st.CreateOrg(&store.Org{ID: "acme", Name: "Acme", State: store.OrgActive,
		AdminGroup: store.GroupMapping{Name: "admins", ID: "g1"}}); err != nil {
		b.Fatal(err)
	}
	if err := st.AddDomain(&store.Domain{OrgID: "acme", Name: "acme.test", Status: store.DomainVerified}); err != nil {
		b.Fatal(err)
	}
	u := &store.User{OrgID: "acme", UserName: "ann@acme.test", Active: true, Source: store.SourceSAML,
		DisplayName: "Ann", Emails: []store.Email{{Value: "ann@acme.test", Primary: true}}}
	if err := st.CreateUser(u); err != nil {
		b.Fatal(err)
	}
	rec := httptest.NewRecorder()
	if _, err := sm.Start(rec, httptest.NewRequest(http.MethodGet, "/", nil), store.Session{
		OrgID: "acme", UserID: u.ID, AuthMethod: authSAML, Groups: []string{"admins", "staff"}, Email: "ann@acme.test",
	}, time.Time{}); err != nil {
		b.Fatal(err)
	}
	cookies := rec.Result().Cookies()
	if len(cookies) != 1 {
		b.Fatalf("want one session cookie, got %d", len(cookies))
	}
	return g, cookies[0]
}

// BenchmarkSessionRequest measures what the gateway adds to a proxied
// request with a valid session: strip identity headers, unseal the cookie,
// load the session, re-check org, user and group membership, set headers
// and placeholders.
func BenchmarkSessionRequest(b *testing.B) {
	g, cookie := benchGateway(b)
	var seen string
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		seen = r.Header.Get("X-Sso-User")
		return nil
	})
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodGet, "https://app.example.com/dashboard", nil)
		r.AddCookie(cookie)
		r.Header.Set("X-Sso-User", "spoofed")
		// A replacer per request, as Caddy's server makes.
		r = r.WithContext(contextWithReplacer(r, caddy.NewReplacer()))
		if err := g.ServeHTTP(nil, r, next); err != nil {
			b.Fatal(err)
		}
		if seen != "ann@acme.test" {
			b.Fatalf("upstream saw %q", seen)
		}
	}
}

// BenchmarkGatewayOverhead is what the gateway itself adds to a request
// whose session was re-checked before (the steady state under load), set
// beside the same request handed straight to the next handler: "plain"
// is the cost of building the request as Caddy would (a header map with
// the browser's cookie, a replacer), "gateway" adds the gateway. Their
// difference is the gateway's time and allocations per request.
func BenchmarkGatewayOverhead(b *testing.B) {
	g, cookie := benchGateway(b)
	u, _ := url.Parse("https://app.example.com/dashboard")
	cookieLine := "theme=dark; " + cookie.Name + "=" + cookie.Value
	var seen string
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		seen = r.Header.Get("X-Sso-User")
		return nil
	})
	request := func() *http.Request {
		r := &http.Request{Method: http.MethodGet, URL: u, Host: u.Host, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{"Cookie": {cookieLine}, "User-Agent": {"bench"}, "Accept": {"*/*"}}}
		return r.WithContext(context.WithValue(context.Background(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	}
	// The first request re-checks and fills the cache.
	if err := g.ServeHTTP(nil, request(), next); err != nil || seen != "ann@acme.test" {
		b.Fatalf("first request: %v, upstream saw %q", err, seen)
	}
	b.Run("plain", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := next.ServeHTTP(nil, request()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("gateway", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := g.ServeHTTP(nil, request(), next); err != nil {
				b.Fatal(err)
			}
		}
		if seen != "ann@acme.test" {
			b.Fatalf("upstream saw %q", seen)
		}
	})
}
