package scim

import (
	"crypto/sha256"
	"net/http"
	"strings"
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
	// Out of attempts: refused before the token is looked at, even a good one.
	r := e.callWith("guess", http.MethodGet, users, nil)
	e.scimError(r, http.StatusTooManyRequests, "")
	if r.header.Get("Retry-After") != "60" {
		t.Errorf("Retry-After = %q", r.header.Get("Retry-After"))
	}
	e.scimError(e.callWith(e.tokens["acme"], http.MethodGet, users, nil), http.StatusTooManyRequests, "")
	// Another organization from the same address is not affected.
	if r := e.call("globex", http.MethodGet, "/Users", nil); r.status != http.StatusOK {
		t.Fatalf("other org: %d", r.status)
	}
	// One more attempt per FailureEvery.
	e.clock.Advance(time.Minute)
	if r := e.call("acme", http.MethodGet, "/Users", nil); r.status != http.StatusOK {
		t.Fatalf("after waiting: %d %s", r.status, r.raw)
	}
	e.scimError(e.callWith("guess", http.MethodGet, users, nil), http.StatusUnauthorized, "")
	e.scimError(e.callWith("guess", http.MethodGet, users, nil), http.StatusTooManyRequests, "")
}

func TestFailureLimiterStaysBounded(t *testing.T) {
	l := newFailureLimiter(2, time.Second)
	now := time.Now()
	for i := range maxTrackedSources + 50 {
		l.failed(strings.Repeat("k", i%7)+string(rune('a'+i%26))+time.Duration(i).String(), now)
	}
	if n := len(l.sources); n > maxTrackedSources {
		t.Fatalf("%d sources tracked", n)
	}
	l.failed("x", now)
	l.failed("x", now)
	if ok, _ := l.allowed("x", now); ok {
		t.Fatal("x allowed after its burst")
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
