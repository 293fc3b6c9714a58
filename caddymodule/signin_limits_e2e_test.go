package caddymodule_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/crewjam/saml"

	"github.com/ssogate/ssogate/examples/demo"
	"github.com/ssogate/ssogate/examples/demoidp"
)

// TestSignInAtTheStorageLimit: an org at its max_stored_bytes creates no
// user through sign-ins (TestACSRefusalHasNoSideEffect), but its users on
// file still sign in; a longer profile they assert is not stored.
func TestSignInAtTheStorageLimit(t *testing.T) {
	st := runningStore(t)
	if p := respond(t, newBrowser(t), demo.AliceEmail, demoidp.RespondOptions{}); p.status != http.StatusSeeOther {
		t.Fatalf("first sign-in: %d\n%s", p.status, p.body)
	}
	alice, err := st.UserByUserName(demo.OrgID, demo.AliceEmail)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := st.StoredBytes(demo.OrgID)
	if err != nil {
		t.Fatal(err)
	}
	reloadWithSSO(t, map[string]any{"scim_limits": map[string]any{"max_stored_bytes": stored + 64}})

	longer := alice.DisplayName + strings.Repeat(" Jr.", 100)
	b := newBrowser(t)
	p := respond(t, b, demo.AliceEmail, demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
		demoidp.SetAttribute(a, demoidp.AttrDisplayName, longer)
	}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("a user on file at the storage limit: %d\n%s", p.status, p.body)
	}
	signedIn(t, b)
	after, err := st.GetUser(demo.OrgID, alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.DisplayName != alice.DisplayName {
		t.Errorf("the profile grew past the limit: display name %q", after.DisplayName)
	}
	if !after.LastLogin.After(alice.LastLogin) {
		t.Errorf("the sign-in was not recorded")
	}
	if n, _ := st.StoredBytes(demo.OrgID); n > stored+64 {
		t.Errorf("stored bytes %d, limit %d", n, stored+64)
	}

	// Within the limit, the profile follows the assertion again.
	reloadWithSSO(t, nil)
	if p := respond(t, newBrowser(t), demo.AliceEmail, demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
		demoidp.SetAttribute(a, demoidp.AttrDisplayName, longer)
	}}); p.status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d\n%s", p.status, p.body)
	}
	if u, _ := st.GetUser(demo.OrgID, alice.ID); u.DisplayName != longer {
		t.Errorf("display name %q, want the asserted one", u.DisplayName)
	}
	if p := respond(t, newBrowser(t), demo.AliceEmail, demoidp.RespondOptions{}); p.status != http.StatusSeeOther {
		t.Fatalf("sign-in restoring the name: %d", p.status)
	}
}
