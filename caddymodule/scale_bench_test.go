package caddymodule

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/ssogate/ssogate/store"
)

// BenchmarkSessionRequestScale is BenchmarkSessionRequest with 1k, 10k and
// 100k users in the signed-in user's organization, in two forms:
//
//   - recheck: the full per-request re-check (cookie, session, org, user,
//     admin group), as after any store write; the re-check cache is
//     emptied before every request;
//   - cached: a re-check reused while the store has not changed (the
//     cookie is still unsealed and the lifetimes still applied).
//
// The cost must not grow with the number of users. Runs only with -bench.
func BenchmarkSessionRequestScale(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		g, cookie := benchGateway(b)
		loadBenchUsers(b, g.lazy.store, "acme", n)
		next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			if r.Header.Get("X-Sso-User") != "ann@acme.test" {
				b.Fatalf("upstream saw %q", r.Header.Get("X-Sso-User"))
			}
			return nil
		})
		for _, cached := range []bool{false, true} {
			name := "recheck"
			if cached {
				name = "cached"
			}
			b.Run(fmt.Sprintf("users=%d/%s", n, name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if !cached {
						g.lazy.rechecked.mu.Lock()
						g.lazy.rechecked.entries = nil
						g.lazy.rechecked.mu.Unlock()
					}
					r := httptest.NewRequest(http.MethodGet, "https://app.example.com/dashboard", nil)
					r.AddCookie(cookie)
					r = r.WithContext(contextWithReplacer(r, caddy.NewReplacer()))
					if err := g.ServeHTTP(nil, r, next); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// loadBenchUsers adds n SCIM-provisioned users to org, a thousand per
// transaction.
func loadBenchUsers(b *testing.B, st *store.Store, org string, n int) {
	b.Helper()
	start := time.Now()
	for from := 0; from < n; from += 1000 {
		var us []*store.User
		for i := from; i < min(from+1000, n); i++ {
			name := fmt.Sprintf("user%07d@acme.test", i)
			us = append(us, &store.User{OrgID: org, UserName: name, ExternalID: "ext-" + name, Active: true,
				Source: store.SourceSCIM, Emails: []store.Email{{Value: name, Primary: true}}})
		}
		if err := st.CreateUsers(us); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("loaded %d users in %v", n, time.Since(start).Round(time.Millisecond))
}
