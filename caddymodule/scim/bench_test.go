package scim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	elimity "github.com/elimity-com/scim"

	"github.com/ssogate/ssogate/store"
)

// serve runs one request through the server in-process (no network), as
// the gateway's handler does.
func serve(b *testing.B, s *Server, token, method, target string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/scim+json")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

func quietEnv(b *testing.B) *env {
	return newEnv(b)
}

// BenchmarkCreateUser measures POST /Users: validation, the adoption
// look-ups, the synced store write and the audit event.
func BenchmarkCreateUser(b *testing.B) {
	for _, parallel := range []bool{false, true} {
		b.Run(fmt.Sprintf("parallel=%v", parallel), func(b *testing.B) {
			e := quietEnv(b)
			target := testPrefix + "/scim/acme/v2/Users"
			var n atomic.Int64
			create := func() {
				i := n.Add(1)
				body, _ := json.Marshal(oktaUser(fmt.Sprintf("user%d@acme.com", i)))
				if rec := serve(b, e.srv, e.tokens["acme"], http.MethodPost, target, body); rec.Code != http.StatusCreated {
					b.Errorf("status %d: %s", rec.Code, rec.Body)
				}
			}
			b.ReportAllocs()
			start := time.Now()
			if parallel {
				b.SetParallelism(8) // IdPs send several requests at once
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						create()
					}
				})
			} else {
				for b.Loop() {
					create()
				}
			}
			b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "users/s")
		})
	}
}

// BenchmarkUserNameFilter measures GET /Users?filter=userName eq "…" (the
// look-up Okta and Entra ID make before every create) with 1k and 100k
// users in the organization. The cost must not grow with the count.
func BenchmarkUserNameFilter(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		e := quietEnv(b)
		loadUsers(b, e.store, "acme", n)
		b.Run(fmt.Sprintf("users=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				// In another case than stored, as IdPs may ask.
				f := url.QueryEscape(fmt.Sprintf(`userName eq "USER%07d@acme.example"`, (i*7919)%n))
				rec := serve(b, e.srv, e.tokens["acme"], http.MethodGet, testPrefix+"/scim/acme/v2/Users?filter="+f, nil)
				if rec.Code != http.StatusOK || !bytes.Contains(rec.Body.Bytes(), []byte(`"totalResults":1`)) {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
				i++
			}
		})
	}
}

// loadUsers creates n users in batches (one synced commit per user would
// make the setup take minutes).
func loadUsers(b *testing.B, st *store.Store, org string, n int) {
	start := time.Now()
	const batch = 1000
	for from := 0; from < n; from += batch {
		var us []*store.User
		for i := from; i < min(from+batch, n); i++ {
			name := fmt.Sprintf("user%07d@acme.example", i)
			us = append(us, &store.User{OrgID: org, UserName: name, ExternalID: "ext-" + name, Active: true, Source: store.SourceSCIM,
				Emails: []store.Email{{Value: name, Type: "work", Primary: true}}, GivenName: "User", FamilyName: fmt.Sprint(i)})
		}
		if err := st.CreateUsers(us); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("loaded %d users in %v", n, time.Since(start).Round(time.Millisecond))
}

// BenchmarkLibraryServer measures building the library's server for a
// request, which ServeHTTP does instead of caching one per organization.
func BenchmarkLibraryServer(b *testing.B) {
	e := quietEnv(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := elimity.NewServer(&e.srv.args, elimity.WithBaseURL(e.srv.BaseURL("acme")), elimity.WithLogger(libLogger{e.srv.log})); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetUser is the cheapest authenticated request: token check,
// one read, the response.
func BenchmarkGetUser(b *testing.B) {
	e := quietEnv(b)
	id := e.createUser("acme", "bench@acme.com", nil)
	b.ReportAllocs()
	for b.Loop() {
		if rec := serve(b, e.srv, e.tokens["acme"], http.MethodGet, testPrefix+"/scim/acme/v2/Users/"+id, nil); rec.Code != http.StatusOK {
			b.Fatal(rec.Code)
		}
	}
}
