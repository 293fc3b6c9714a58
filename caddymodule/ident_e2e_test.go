package caddymodule_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/crewjam/saml"

	"github.com/ssogate/ssogate/examples/demo"
	"github.com/ssogate/ssogate/examples/demoidp"
)

// Identity values go by one rule (package identity). These tests run the
// observed attacks through the whole gateway: the demo IdP signs what
// the attacker's IdP account asserts, the gateway answers as it would in
// production.

// asserting makes the IdP assert email, with a stable ID and groups.
func asserting(email, objectID string, groups ...string) demoidp.RespondOptions {
	return demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
		a.Subject.NameID.Value = email
		demoidp.SetAttribute(a, demoidp.AttrName, email)
		demoidp.SetAttribute(a, demoidp.AttrObjectID, objectID)
		if groups != nil {
			demoidp.SetAttribute(a, demoidp.AttrGroups, groups...)
		}
	}}
}

// signInAs posts a response for org B asserting what opts says.
func signInAs(t *testing.T, b *browser, opts demoidp.RespondOptions) page {
	t.Helper()
	acs, form, err := env.IdP.RespondWith(b.startLogin(orgBEmail, ""), demo.AliceEmail, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b.post(acs, form)
}

// A different IdP user whose asserted address spells "kim" with U+212A
// KELVIN SIGN (which strings.ToLower turns into "k") got a session on
// the SCIM-provisioned kim's account.
func TestLookAlikeAddressDoesNotSignInAsAnotherUser(t *testing.T) {
	setUpOrgB(t, false)
	c := newSCIMClient(t, orgB)
	const kim = "kim@b-corp.test"
	kimID := c.provision(kim)
	c.must(http.StatusCreated, http.MethodPost, "/Groups", map[string]any{
		"schemas":     []string{"urn:ietf:params:scim:schemas:core:2.0:Group"},
		"displayName": demo.AdminGroupName,
		"externalId":  "00gBadmins",
		"members":     []any{map[string]any{"value": kimID}},
	})

	// Control: kim herself.
	b := newBrowser(t)
	if p := signInAs(t, b, asserting(kim, "00u-kim")); p.status != http.StatusSeeOther {
		t.Fatalf("kim's own sign-in: %d\n%s", p.status, p.body)
	}
	if h := signedIn(t, b); h["X-Sso-User-Id"] != kimID {
		t.Fatalf("kim signed in as %v", h)
	}

	for _, lookAlike := range []string{"\u212Aim@b-corp.test", "\u212AIM@B-CORP.TEST"} {
		m := newBrowser(t)
		p := signInAs(t, m, asserting(lookAlike, "00u-mallory", demo.AdminGroupName))
		if p.status == http.StatusSeeOther {
			_, h := m.whoami()
			t.Fatalf("%q signed in as %v", lookAlike, h)
		}
		wantRefusal(t, m, orgB, p, "not in the admin group")
	}
}

// The admin group is matched by name ignoring ASCII case only: a group
// whose name has U+017F LONG S for s (strings.EqualFold says equal) is
// another group.
func TestLookAlikeGroupIsNotTheAdminGroup(t *testing.T) {
	for _, g := range []string{"\u017Fsogate-admins", "sso\u017Fgate-admins"} {
		b := newBrowser(t)
		wantRefusal(t, b, demo.OrgID, respond(t, b, demo.AliceEmail, demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
			demoidp.SetAttribute(a, demoidp.AttrGroups, g, "staff")
		}}), "not in the admin group")
	}
	// Control: ASCII case is ignored.
	b := newBrowser(t)
	p := respond(t, b, demo.AliceEmail, demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
		demoidp.SetAttribute(a, demoidp.AttrGroups, strings.ToUpper(demo.AdminGroupName))
	}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("ASCII-case variant of the admin group: %d\n%s", p.status, p.body)
	}
	signedIn(t, b)
}

// An asserted address is exactly one addr-spec: the first passed the
// verified-domain check (its last '@'), the comma list reached the
// upstream verbatim in X-SSO-Email, the newline was stored.
func TestAssertedAddressIsOneAddrSpec(t *testing.T) {
	for _, v := range []string{
		"alice@evil.test@example.com",
		"alice@example.com, mallory@example.com",
		"alice@example.com,mallory@example.com",
		"alice\n@example.com",
		"alice@example.com\nX-SSO-Groups: ssogate-admins",
		`"alice@evil.test"@example.com`,
	} {
		b := newBrowser(t)
		wantRefusal(t, b, demo.OrgID, respond(t, b, demo.AliceEmail, demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
			demoidp.SetAttribute(a, demoidp.AttrName, v)
		}}), "not an email address")
	}
	assertNoUser(t, demo.OrgID, "evil.test")
	assertNoUser(t, demo.OrgID, "mallory@")
}

// X-SSO-Groups is a comma-separated list; a group name with a comma in it
// must not split into names the user was never given.
func TestGroupNamesWithCommasStayWhole(t *testing.T) {
	b := newBrowser(t)
	p := respond(t, b, demo.AliceEmail, demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
		demoidp.SetAttribute(a, demoidp.AttrGroups, demo.AdminGroupName, "Sales, EMEA", "100%")
	}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d\n%s", p.status, p.body)
	}
	h := signedIn(t, b)
	if got, want := h["X-Sso-Groups"], demo.AdminGroupName+",Sales%2C EMEA,100%25"; got != want {
		t.Errorf("X-Sso-Groups = %q, want %q", got, want)
	}
}

// The address alone never picks one of several users that share it.
func TestSharedAddressLinksNoOne(t *testing.T) {
	setUpOrgB(t, false)
	c := newSCIMClient(t, orgB)
	const shared = "team@b-corp.test"
	for _, login := range []string{"team-first", "team-second"} {
		c.must(http.StatusCreated, http.MethodPost, "/Users", map[string]any{
			"schemas":  []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
			"userName": login,
			"emails":   []any{map[string]any{"value": shared, "type": "work"}},
			"active":   true,
		})
	}
	b := newBrowser(t)
	wantRefusal(t, b, orgB, signInAs(t, b, asserting(shared, "00u-team", demo.AdminGroupName)), "several users")
}
