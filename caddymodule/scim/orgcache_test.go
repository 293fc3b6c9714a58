package scim

import (
	"crypto/sha256"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
	"github.com/ssogate/ssogate/store/pgtest"
)

// The organization record authentication reuses is dropped when another
// replica rotates the token or deletes the organization: the old token
// stops working on this one once the change is heard, without a request
// that reads the record first.
func TestCachedOrgFollowsOtherReplicas(t *testing.T) {
	dsn, schema := pgtest.Schema(t)
	e := newEnvWith(t, store.Options{}, postgresBackend(t, dsn, schema))
	other, err := store.OpenBackend(postgresBackend(t, dsn, schema), store.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close() })

	users := testPrefix + "/scim/acme/v2/Users"
	status := func(token string) int { return e.callWith(token, http.MethodGet, users, nil).status }
	// Until the old token fails, with a bound far above the notification
	// delay that only a stalled machine reaches.
	refusedSoon := func(what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for status(e.tokens["acme"]) != http.StatusUnauthorized {
			if time.Now().After(deadline) {
				t.Fatalf("the old token still works 10 s after %s on the other replica", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for range 3 {
		if s := status(e.tokens["acme"]); s != http.StatusOK {
			t.Fatalf("before the rotation: %d", s)
		}
	}
	sum := sha256.Sum256([]byte("the-new-token"))
	if _, err := other.UpdateOrg("acme", func(o *store.Org) error { o.SCIMTokenHash = sum[:]; return nil }); err != nil {
		t.Fatal(err)
	}
	refusedSoon("a rotation")
	if s := status("the-new-token"); s != http.StatusOK {
		t.Fatalf("the new token: %d", s)
	}
	e.tokens["acme"] = "the-new-token"
	if err := other.DeleteOrg("acme"); err != nil {
		t.Fatal(err)
	}
	refusedSoon("a deletion")
}

// The token's last use is written about once a minute however many
// requests come, cached record or not: each flush of a touch rewrites the
// org record.
func TestTokenTouchesStayRareWithTheCache(t *testing.T) {
	var mu sync.Mutex
	rewrites := 0
	e := newEnvWith(t, store.Options{ObserveWrite: func(op string, _ time.Duration) {
		if op == "touch SCIM tokens" {
			mu.Lock()
			rewrites++
			mu.Unlock()
		}
	}}, nil)
	// Requests a few seconds of the gateway's clock apart, each in a
	// flush period of its own: 0 s, then 61 s (a minute on: touched)
	// and four more within that minute.
	for i, at := range []time.Duration{0, 61 * time.Second, time.Second, time.Second, time.Second, time.Second} {
		e.clock.Advance(at)
		e.must(http.StatusOK, "acme", http.MethodGet, "/Users", nil)
		if i < 5 {
			time.Sleep(1200 * time.Millisecond)
		}
	}
	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if rewrites != 2 {
		t.Errorf("the org record was rewritten %d times for touches, want 2 (at 0 s and 61 s)", rewrites)
	}
}
