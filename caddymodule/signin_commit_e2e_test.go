package caddymodule_test

import (
	"net/http"
	"testing"

	"github.com/ssogate/ssogate/examples/demo"
	"github.com/ssogate/ssogate/examples/demoidp"
)

// An admitted SAML sign-in is one store write transaction, whatever it
// writes (the request and the assertion used up, the user updated, the
// browser's previous session ended, the new session, the audit event and
// the attempt): the store's write metric counts one "complete sign-in"
// and none of the separate writes the ACS used to make.
func TestSAMLSignInIsOneCommit(t *testing.T) {
	b := newBrowser(t)
	if p := respond(t, b, demo.AliceEmail, demoidp.RespondOptions{}); p.status != http.StatusSeeOther {
		t.Fatalf("first sign-in: %d\n%s", p.status, p.body)
	}
	// Signed in again in the same browser, which ends that session too.
	acs, form, err := env.IdP.RespondWith(b.startLogin(demo.AliceEmail, ""), demo.AliceEmail, demoidp.RespondOptions{})
	if err != nil {
		t.Fatal(err)
	}
	before := scrape(t)
	if p := b.post(acs, form); p.status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d\n%s", p.status, p.body)
	}
	after := scrape(t)
	if status, _ := b.whoami(); status != http.StatusOK {
		t.Fatalf("signed-in request: %d", status)
	}
	const metric = "ssogate_store_write_duration_seconds_count"
	if d := after(metric, "op", "complete sign-in") - before(metric, "op", "complete sign-in"); d != 1 {
		t.Errorf("complete sign-in counted %v times, want 1", d)
	}
	for _, op := range []string{"consume sign-in", "create user", "update user", "delete session", "create session", "append audit", "add sign-in attempt"} {
		if d := after(metric, "op", op) - before(metric, "op", op); d != 0 {
			t.Errorf("%q written %v times besides", op, d)
		}
	}
}
