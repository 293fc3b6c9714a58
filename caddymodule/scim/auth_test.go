package scim

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/ssogate/ssogate/store"
)

func TestAuthenticationIsRequiredBeforeAnythingElse(t *testing.T) {
	e := newEnv(t)
	if err := e.store.CreateOrg(&store.Org{ID: "notoken", Name: "No token"}); err != nil {
		t.Fatal(err)
	}
	users := testPrefix + "/scim/acme/v2/Users"
	for _, c := range []struct {
		name, token, path, method string
		body                      any
	}{
		{"no header", "", users, http.MethodGet, nil},
		{"wrong token", "nope", users, http.MethodGet, nil},
		{"other org's token", e.tokens["globex"], users, http.MethodGet, nil},
		{"unknown org", e.tokens["acme"], testPrefix + "/scim/initech/v2/Users", http.MethodGet, nil},
		{"org without token", e.tokens["acme"], testPrefix + "/scim/notoken/v2/Users", http.MethodGet, nil},
		{"malformed org", e.tokens["acme"], testPrefix + "/scim/ACME!/v2/Users", http.MethodGet, nil},
		{"no org", e.tokens["acme"], testPrefix + "/scim/", http.MethodGet, nil},
		// Not a 404, 405 or 413: nothing is looked at before the token.
		{"unknown endpoint", "nope", testPrefix + "/scim/acme/v2/Nothing", http.MethodGet, nil},
		{"wrong method", "nope", testPrefix + "/scim/acme/v2/ServiceProviderConfig", http.MethodDelete, nil},
		{"huge body", "nope", users, http.MethodPost, strings.Repeat("x", DefaultMaxRequestBytes+10)},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := e.callWith(c.token, c.method, c.path, c.body)
			e.scimError(r, http.StatusUnauthorized, "")
			if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
			}
		})
	}

	// The scheme is case-insensitive; other schemes are not bearer tokens.
	for _, h := range []string{"bearer " + e.tokens["acme"], "BEARER  " + e.tokens["acme"]} {
		req, _ := http.NewRequest(http.MethodGet, e.http.URL+users, nil)
		req.Header.Set("Authorization", h)
		res, err := e.http.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("Authorization %q: status %d", h, res.StatusCode)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, e.http.URL+users, nil)
	req.Header.Set("Authorization", "Basic "+e.tokens["acme"])
	res, err := e.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("Basic scheme: status %d", res.StatusCode)
	}

	// Past authentication, the path must be below /v2.
	e.scimError(e.callWith(e.tokens["acme"], http.MethodGet, testPrefix+"/scim/acme/Users", nil), http.StatusNotFound, "")
	e.scimError(e.callWith(e.tokens["acme"], http.MethodGet, testPrefix+"/scim/acme/v2/Nothing", nil), http.StatusNotFound, "")
	e.scimError(e.callWith(e.tokens["acme"], http.MethodPost, users, strings.Repeat(" ", DefaultMaxRequestBytes+10)), http.StatusRequestEntityTooLarge, "")

	// Failures of known organizations are audited, without the token.
	events, err := e.store.ListAudit("acme", 100)
	if err != nil {
		t.Fatal(err)
	}
	denied := 0
	for _, ev := range events {
		if ev.Action == "scim.auth" && ev.Outcome == "denied" {
			denied++
			for _, v := range ev.Details {
				if strings.Contains(v, "token-of") {
					t.Errorf("audit event carries a token: %+v", ev)
				}
			}
		}
	}
	if denied == 0 {
		t.Error("no audit event for failed authentications")
	}
}

func TestRepeatedFailuresAreSlowedDown(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.FailureBurst, c.FailureEvery = 3, time.Minute })
	users := testPrefix + "/scim/acme/v2/Users"
	for range 3 {
		e.scimError(e.callWith("guess", http.MethodGet, users, nil), http.StatusUnauthorized, "")
	}
	// Out of attempts: further failures get 429, whatever they get wrong.
	for _, tok := range []string{"guess", "", e.tokens["globex"]} {
		r := e.callWith(tok, http.MethodGet, users, nil)
		e.scimError(r, http.StatusTooManyRequests, "")
		if r.header.Get("Retry-After") != "60" {
			t.Errorf("Retry-After = %q", r.header.Get("Retry-After"))
		}
	}
	// The organization's own token still works from the same address:
	// the IdP shares it with whoever failed.
	for range 5 {
		if r := e.call("acme", http.MethodGet, "/Users", nil); r.status != http.StatusOK {
			t.Fatalf("valid token from a throttled address: %d %s", r.status, r.raw)
		}
	}
	// And the successes did not lift the throttle.
	e.scimError(e.callWith("guess", http.MethodGet, users, nil), http.StatusTooManyRequests, "")
	// Another organization from the same address is not affected.
	e.scimError(e.callWith("guess", http.MethodGet, testPrefix+"/scim/globex/v2/Users", nil), http.StatusUnauthorized, "")
	// One more failure per FailureEvery.
	e.clock.Advance(time.Minute)
	e.scimError(e.callWith("guess", http.MethodGet, users, nil), http.StatusUnauthorized, "")
	e.scimError(e.callWith("guess", http.MethodGet, users, nil), http.StatusTooManyRequests, "")
}

// TestSharedEgressDoesNotStarveValidRequests replays the report: while
// someone on the IdP's egress address floods org B's path with bad
// tokens, B's IdP keeps provisioning without a single 429, and the flood
// leaves a handful of audit events rather than one per request.
func TestSharedEgressDoesNotStarveValidRequests(t *testing.T) {
	e := newEnv(t)
	users := testPrefix + "/scim/globex/v2/Users"
	valid, refused := 0, 0
	for i := range 120 {
		e.clock.Advance(250 * time.Millisecond) // 30 s in all
		if r := e.callWith(fmt.Sprint("bad-token-", i), http.MethodGet, users, nil); r.status == http.StatusTooManyRequests {
			refused++
		}
		if r := e.call("globex", http.MethodGet, "/Users", nil); r.status == http.StatusOK {
			valid++
		} else {
			t.Errorf("valid request %d: %d %s", i, r.status, r.raw)
		}
	}
	if valid != 120 || refused == 0 {
		t.Errorf("%d of 120 valid requests passed; %d bad ones throttled", valid, refused)
	}
	events, err := e.store.ListAudit("globex", 1000)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, ev := range events {
		if ev.Action == "scim.auth" {
			total += max(ev.Count, 1)
		}
	}
	if len(events) > 4 || total != 120 {
		t.Errorf("%d audit events counting %d failures; want a few counting 120", len(events), total)
	}
}

func TestSCIMThrottleGroupsIPv6By64(t *testing.T) {
	var addr atomic.Value
	addr.Store("2001:db8:1:2::1")
	e := newEnv(t, func(c *Config) {
		c.FailureBurst, c.FailureEvery = 2, time.Minute
		c.ClientIP = func(*http.Request) string { return addr.Load().(string) }
	})
	users := testPrefix + "/scim/acme/v2/Users"
	for i := range 2 {
		addr.Store(fmt.Sprintf("2001:db8:1:2::%x", i+1))
		e.scimError(e.callWith("guess", http.MethodGet, users, nil), http.StatusUnauthorized, "")
	}
	addr.Store("2001:db8:1:2:ffff:ffff:ffff:ffff")
	e.scimError(e.callWith("guess", http.MethodGet, users, nil), http.StatusTooManyRequests, "")
	addr.Store("2001:db8:1:3::1")
	e.scimError(e.callWith("guess", http.MethodGet, users, nil), http.StatusUnauthorized, "")
}

// TestFailureLimiterStaysBounded: however many sources fail, the store
// keeps at most maxKeys buckets.
func TestFailureLimiterStaysBounded(t *testing.T) {
	e := newEnv(t)
	l := NewFailureLimiter(e.store, 2, time.Second)
	l.maxKeys = 200
	now := time.Now()
	fail := func(key string) bool {
		t.Helper()
		ok, _, err := l.fail(key, now)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for i := range 3 * l.maxKeys {
		fail(fmt.Sprint("source-", i))
	}
	e.store.WaitThrottlePruning() // pruning runs in the background
	if n, err := e.store.CountThrottle(limiterScope, now); err != nil || n > l.maxKeys {
		t.Fatalf("%d buckets kept, bound is %d (%v)", n, l.maxKeys, err)
	}
	// At the bound, new sources are still counted.
	if !fail("x") || !fail("x") || fail("x") {
		t.Fatal("x did not get exactly its burst")
	}
}

// TestLimiterIsShared: servers on one store (the old and the new config
// of a reload, or two gateway processes on one backend) drain the same
// buckets, without sharing a Limiter.
func TestLimiterIsShared(t *testing.T) {
	users := testPrefix + "/scim/acme/v2/Users"
	e := newEnv(t, func(c *Config) { c.FailureBurst, c.FailureEvery = 2, time.Minute })
	for range 2 {
		e.scimError(e.callWith("guess", http.MethodGet, users, nil), http.StatusUnauthorized, "")
	}
	srv, err := New(Config{Store: e.store, BaseURL: testBase, Prefix: testPrefix,
		ClientIP: func(*http.Request) string { return "192.0.2.1" }, FailureBurst: 2, FailureEvery: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	e2 := *e
	e2.srv, e2.http = srv, httptest.NewServer(srv)
	t.Cleanup(e2.http.Close)
	e2.scimError(e2.callWith("guess", http.MethodGet, users, nil), http.StatusTooManyRequests, "")
	// A valid token still passes on either.
	if r := e2.callWith(e.tokens["acme"], http.MethodGet, users, nil); r.status != http.StatusOK {
		t.Fatalf("valid token on the second server: %d", r.status)
	}
}

func TestTokenLastUsedIsRecorded(t *testing.T) {
	e := newEnv(t)
	e.must(http.StatusOK, "acme", http.MethodGet, "/ServiceProviderConfig", nil)
	deadline := time.Now().Add(5 * time.Second)
	for {
		o, err := e.store.GetOrg("acme")
		if err != nil {
			t.Fatal(err)
		}
		if !o.SCIMTokenLastUsed.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("last-used time never recorded")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if o, _ := e.store.GetOrg("globex"); !o.SCIMTokenLastUsed.IsZero() {
		t.Error("another org's token marked as used")
	}
}

func TestRotatedTokenStopsWorking(t *testing.T) {
	e := newEnv(t)
	e.must(http.StatusOK, "acme", http.MethodGet, "/Users", nil)
	sum := sha256.Sum256([]byte("the-new-token"))
	if _, err := e.store.UpdateOrg("acme", func(o *store.Org) error { o.SCIMTokenHash = sum[:]; return nil }); err != nil {
		t.Fatal(err)
	}
	e.scimError(e.call("acme", http.MethodGet, "/Users", nil), http.StatusUnauthorized, "")
	if r := e.callWith("the-new-token", http.MethodGet, testPrefix+"/scim/acme/v2/Users", nil); r.status != http.StatusOK {
		t.Fatalf("new token: %d", r.status)
	}
}

// TestLimiterStoreFailureFailsClosed: a failure the limiter cannot count
// is answered with an error, not a plain 401 that would let guesses go
// uncounted; a valid token does not need the limiter and still passes.
func TestLimiterStoreFailureFailsClosed(t *testing.T) {
	broken, err := store.Open(t.TempDir(), store.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := broken.Close(); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config) { c.Limiter = NewFailureLimiter(broken, 2, time.Minute) })
	users := testPrefix + "/scim/acme/v2/Users"
	if r := e.callWith("guess", http.MethodGet, users, nil); r.status != http.StatusInternalServerError {
		t.Errorf("an uncountable failure: %d, want 500", r.status)
	}
	if r := e.callWith(e.tokens["acme"], http.MethodGet, users, nil); r.status != http.StatusOK {
		t.Errorf("the valid token: %d", r.status)
	}
}

// TestFailedAuthFloodFromThrottledSourceWritesNothing: once a source's
// bucket is empty, a flood of failed authentications from it is answered
// 429 without a single store write (the limiter remembers the empty
// bucket until its next token), so it cannot hold the database
// connections that signed-in traffic needs.
func TestFailedAuthFloodFromThrottledSourceWritesNothing(t *testing.T) {
	var mu sync.Mutex
	writes := map[string]int{}
	st, err := store.Open(t.TempDir(), store.Options{GCInterval: -1, ObserveWrite: func(op string, _ time.Duration) {
		if strings.Contains(op, "audit") {
			return // the aggregated audit trail's own flush, once a window
		}
		mu.Lock()
		writes[op]++
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	sum := sha256.Sum256([]byte("the-token"))
	if err := st.CreateOrg(&store.Org{ID: "acme", Name: "acme", SCIMTokenHash: sum[:], SCIMTokenCreated: time.Now()}); err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Store: st, BaseURL: testBase, Prefix: testPrefix, Logger: zaptest.NewLogger(t),
		ClientIP: func(*http.Request) string { return "192.0.2.66" }, FailureBurst: 2, FailureEvery: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	get := func(token string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, hs.URL+testPrefix+"/scim/acme/v2/Users", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := hs.Client().Do(req)
		if err != nil {
			t.Error(err)
			return nil
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res
	}
	for _, want := range []int{http.StatusUnauthorized, http.StatusUnauthorized, http.StatusTooManyRequests} {
		if res := get("guess"); res == nil || res.StatusCode != want {
			t.Fatalf("failure: %v, want %d", res, want)
		}
	}
	mu.Lock()
	if writes["take token"] != 2 {
		t.Fatalf("writes before the flood: %v", writes)
	}
	clear(writes)
	mu.Unlock()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				res := get("guess")
				if res == nil {
					return
				}
				if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
					t.Errorf("flood: %d, Retry-After %q", res.StatusCode, res.Header.Get("Retry-After"))
					return
				}
			}
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(writes) != 0 {
		t.Fatalf("400 failures from a throttled source wrote %v", writes)
	}
	// The valid token still passes from the same source.
	if res := get("the-token"); res == nil || res.StatusCode != http.StatusOK {
		t.Fatalf("valid token: %v", res)
	}
}
