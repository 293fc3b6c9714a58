package caddymodule_test

import (
	"fmt"
	"net/http"
	"testing"
)

// TestThrottlesSurviveReload: a config reload (caddy.Load of a changed
// config) keeps the password and SCIM throttles, so reloading does not
// hand a brute-forcer a clean slate.
func TestThrottlesSurviveReload(t *testing.T) {
	cheap := map[string]any{"time": 1, "memory_kib": 8192, "threads": 1}
	reloadWithSSO(t, map[string]any{"password_hashing": cheap})
	const owner = "owner@lcl-reload.test"
	org := uniqueOrg("lcl-reload")
	link := newLocalOrg(t, org, owner, "")
	newBrowserFrom(t, "127.0.10.1").setPassword(link, strongPassword)
	scim := newSCIMClient(t, org)

	// Password: four failures before the reload, the fifth (which locks)
	// after it. Only a throttle that remembers the four locks the account.
	attacker := newBrowserFrom(t, "127.0.10.2")
	for i := range 4 {
		if p := attacker.backupSignIn(owner, fmt.Sprint("guess number ", i), ""); p.status != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i+1, p.status)
		}
	}
	// SCIM: the ten failures a source gets before it is throttled.
	bad := scimClientFrom(t, scim.base, "wrong-token", "127.0.10.3")
	for i := range 10 {
		if status, _ := bad.do(http.MethodGet, "/Users", nil); status != http.StatusUnauthorized {
			t.Fatalf("SCIM failure %d: %d", i+1, status)
		}
	}
	if a := auditActions(t, org); a["login.lock/denied"] != 0 {
		t.Fatalf("locked before the fifth failure: %v", a)
	}

	// A changed config, with the audit bounds set too.
	reloadWithSSO(t, map[string]any{"password_hashing": cheap, "audit": map[string]any{"max_age": "30d", "max_events": 5000, "aggregate_window": "30s"}})

	if p := attacker.backupSignIn(owner, "guess number 4", ""); p.status != http.StatusUnauthorized {
		t.Fatalf("fifth failure: %d", p.status)
	}
	if a := auditActions(t, org); a["login.lock/denied"] == 0 {
		t.Errorf("the reload reset the password throttle: no lock after five failures (%v)", a)
	}
	// The source refills one failure per 6 s: of three more right away,
	// at least one is refused unless the reload forgot the ten.
	throttled := 0
	for range 3 {
		if status, _ := bad.do(http.MethodGet, "/Users", nil); status == http.StatusTooManyRequests {
			throttled++
		}
	}
	if throttled == 0 {
		t.Error("the reload reset the SCIM failure limiter")
	}
	// The organization's own token passes from that address all along.
	good := scimClientFrom(t, scim.base, scim.token, "127.0.10.3")
	good.must(http.StatusOK, http.MethodGet, "/Users", nil)
}

// scimClientFrom is a SCIM client with token whose connections come from
// ip.
func scimClientFrom(t *testing.T, base, token, ip string) scimClient {
	c := scimClient{t: t, base: base, token: token}
	c.client = newBrowserFrom(t, ip).client
	return c
}
