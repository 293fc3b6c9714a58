package caddymodule_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/ssogate/ssogate/examples/demo"
)

// TestFirstSignInRacesProvisioning: the IdP provisions a person (userName
// not their address, as Entra ID sends a UPN that differs from the mail
// attribute) at the very moment they sign in for the first time. Each
// round both must succeed, and the session must be the provisioned
// user's: either the sign-in created the user and the provisioning
// adopted it, or the sign-in found the provisioned user, the second time
// if it had looked before the provisioning committed. Never a second
// user whom deprovisioning would not reach.
func TestFirstSignInRacesProvisioning(t *testing.T) {
	setUpOrgB(t, false)
	c := newSCIMClient(t, orgB)
	const rounds = 100
	before := scrape(t)
	for i := range rounds {
		email := fmt.Sprintf("person%d@b-corp.test", i)
		b := newBrowser(t)
		var wg sync.WaitGroup
		var status int
		var out map[string]any
		var signIn page
		start := make(chan struct{})
		wg.Go(func() {
			<-start
			// The sign-in looks the user up a millisecond or two after
			// its post, once the response is validated: provisioning
			// later and later each round lands its commit before the
			// look-up, after the sign-in's write, and in between.
			time.Sleep(time.Duration(i%50) * 80 * time.Microsecond)
			status, out = c.do(http.MethodPost, "/Users", map[string]any{
				"schemas":    []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
				"userName":   fmt.Sprintf("upn%d@corp.b-corp.test", i),
				"externalId": fmt.Sprint("nick", i),
				"emails":     []any{map[string]any{"value": email, "type": "work", "primary": true}},
				"active":     true,
			})
		})
		acs, form, err := env.IdP.RespondWith(b.startLogin(orgBEmail, ""), demo.AliceEmail,
			asserting(email, fmt.Sprint("00u-person", i), demo.AdminGroupName))
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			<-start
			signIn = b.post(acs, form)
		})
		close(start)
		wg.Wait()
		if status != http.StatusCreated {
			t.Fatalf("round %d: provisioning: %d %v", i, status, out)
		}
		if signIn.status != http.StatusSeeOther {
			t.Fatalf("round %d: sign-in: %d\n%s", i, signIn.status, signIn.body)
		}
		if h := signedIn(t, b); h["X-Sso-User-Id"] != out["id"] {
			t.Fatalf("round %d: signed in as user %q, provisioned %q", i, h["X-Sso-User-Id"], out["id"])
		}
	}
	// How often a sign-in's write found the user provisioned meanwhile
	// and was decided again (every attempt is counted).
	const metric = "ssogate_store_write_duration_seconds_count"
	t.Logf("%v sign-in writes for %d sign-ins", scrape(t)(metric, "op", "complete sign-in")-before(metric, "op", "complete sign-in"), rounds)
}
