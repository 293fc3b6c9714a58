package scim

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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

func TestFailureLimiterStaysBounded(t *testing.T) {
	l := NewFailureLimiter(2, time.Second)
	now := time.Now()
	for i := range maxTrackedSources + 50 {
		l.fail(strings.Repeat("k", i%7)+string(rune('a'+i%26))+time.Duration(i).String(), now)
	}
	if n := len(l.sources); n > maxTrackedSources {
		t.Fatalf("%d sources tracked", n)
	}
	// At the bound, one sweep makes room for many new sources.
	for i := 0; len(l.sources) < maxTrackedSources; i++ {
		l.fail(fmt.Sprint("more-", i), now)
	}
	l.fail("fresh-1", now)
	if n := len(l.sources); n > maxTrackedSources*9/10+1 {
		t.Fatalf("%d sources tracked after a sweep", n)
	}
	l.fail("x", now)
	l.fail("x", now)
	if ok, _ := l.fail("x", now); ok {
		t.Fatal("x allowed a failure past its burst")
	}
}

// TestLimiterIsShared: servers built with the same Limiter (the old and
// the new config of a reload) share what it counted.
func TestLimiterIsShared(t *testing.T) {
	lim := NewFailureLimiter(2, time.Minute)
	users := testPrefix + "/scim/acme/v2/Users"
	e := newEnv(t, func(c *Config) { c.Limiter = lim })
	for range 2 {
		e.scimError(e.callWith("guess", http.MethodGet, users, nil), http.StatusUnauthorized, "")
	}
	e2 := newEnv(t, func(c *Config) { c.Limiter = lim })
	e2.scimError(e2.callWith("guess", http.MethodGet, users, nil), http.StatusTooManyRequests, "")
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
