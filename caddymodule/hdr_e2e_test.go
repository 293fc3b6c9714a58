package caddymodule_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/ssogate/ssogate/examples/demo"
	"github.com/ssogate/ssogate/examples/upstream"
)

// provisionOrgBAdmin has org B's SCIM client create a user in B's admin
// group, as any tenant's SCIM client may, and returns its id.
func provisionOrgBAdmin(t *testing.T, user map[string]any) string {
	t.Helper()
	c := newSCIMClient(t, orgB)
	user["schemas"] = []string{"urn:ietf:params:scim:schemas:core:2.0:User"}
	user["active"] = true
	id := c.must(http.StatusCreated, http.MethodPost, "/Users", user)["id"].(string)
	c.must(http.StatusCreated, http.MethodPost, "/Groups", map[string]any{
		"schemas":     []string{"urn:ietf:params:scim:schemas:core:2.0:Group"},
		"displayName": demo.AdminGroupName,
		"members":     []any{map[string]any{"value": id}},
	})
	return id
}

// signedInWithToken signs b in to org B asserting email and objectID, and
// returns what the upstream got: headers and signed identity.
func signedInWithToken(t *testing.T, b *browser, email, objectID string) upstream.Identity {
	t.Helper()
	if p := signInAs(t, b, asserting(email, objectID)); p.status != http.StatusSeeOther {
		t.Fatalf("sign-in as %s: %d\n%s", email, p.status, p.body)
	}
	status, id, _ := b.whoamiFull()
	if status != http.StatusOK {
		t.Fatalf("whoami: %d", status)
	}
	if id.JWT == nil || !id.JWT.Verified || id.JWT.Claims == nil {
		t.Fatalf("no verified signed identity: %+v", id.JWT)
	}
	return id
}

// TestIdentityCarriesOnlyVerifiedAddresses: org B's SCIM client stores a
// user whose userName and email are in a domain B never verified (here
// one another org could onboard later); the user signs in with B's
// verified address. The upstream must get the verified address, never
// the unclaimed one, in any header or claim.
func TestIdentityCarriesOnlyVerifiedAddresses(t *testing.T) {
	loadGatewayConfig(t, demo.DefaultGatewayHandler(), nil)
	t.Cleanup(func() { loadGatewayConfig(t, map[string]any{"handler": "sso_gateway"}, nil) })
	setUpOrgB(t, false)
	const unclaimed = "ceo@bigcorp-not-onboarded.test"
	provisionOrgBAdmin(t, map[string]any{
		"userName":   unclaimed,
		"externalId": "00uMallory",
		"emails":     []any{map[string]any{"value": unclaimed, "type": "work", "primary": true}},
	})
	id := signedInWithToken(t, newBrowser(t), "mallory@b-corp.test", "00uMallory")

	h := id.Headers
	if h["X-Sso-Org"] != orgB {
		t.Fatalf("signed in to %q: %v", h["X-Sso-Org"], h)
	}
	for name, v := range h {
		if strings.Contains(strings.ToLower(v), "bigcorp") {
			t.Errorf("%s: %q reached the upstream", name, v)
		}
	}
	claims, err := json.Marshal(id.JWT.Claims)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.ToLower(string(claims)), "bigcorp") {
		t.Errorf("the signed identity carries the unclaimed address: %s", claims)
	}
	// The IdP's assertion, in B's verified domain, stands in for both.
	if h["X-Sso-Email"] != "mallory@b-corp.test" || h["X-Sso-User"] != "mallory@b-corp.test" ||
		id.JWT.Claims.Email != "mallory@b-corp.test" || id.JWT.Claims.PreferredUsername != "mallory@b-corp.test" {
		t.Errorf("want the asserted address: headers %v, claims %s", h, claims)
	}
}

// TestSubjectIsUniqueAcrossOrganizations: org B's SCIM client gives its
// user the IdP identifier of the demo org's alice (an externalId is any
// string a tenant chooses). X-SSO-Subject, which the oauth2-proxy preset
// sends as X-Forwarded-User and apps key accounts on, must still differ,
// and say which org it belongs to.
func TestSubjectIsUniqueAcrossOrganizations(t *testing.T) {
	loadGatewayConfig(t, demo.DefaultGatewayHandler(), nil)
	t.Cleanup(func() { loadGatewayConfig(t, map[string]any{"handler": "sso_gateway"}, nil) })
	a := newBrowser(t)
	a.signIn(demo.AliceEmail, demo.DefaultPassword, "")
	_, alice, _ := a.whoamiFull()
	aliceSub := alice.Headers["X-Sso-Subject"]
	raw := strings.TrimPrefix(aliceSub, demo.OrgID+"/")
	if raw == "" {
		t.Fatalf("alice has no subject: %v", alice.Headers)
	}
	if aliceSub != demo.OrgID+"/"+raw {
		t.Errorf("alice's subject %q is not qualified by her org", aliceSub)
	}

	setUpOrgB(t, false)
	provisionOrgBAdmin(t, map[string]any{"userName": "mallory@b-corp.test", "externalId": raw})
	mallory := signedInWithToken(t, newBrowser(t), "mallory@b-corp.test", raw)
	sub := mallory.Headers["X-Sso-Subject"]
	if sub == aliceSub {
		t.Fatalf("a user of org %s has alice's subject %q", orgB, sub)
	}
	if sub != orgB+"/"+raw {
		t.Errorf("subject %q, want %q", sub, orgB+"/"+raw)
	}
	if c := mallory.JWT.Claims; c.IdPSubject != sub || c.Org != orgB {
		t.Errorf("claims idp_sub %q org %q, want %q %q", c.IdPSubject, c.Org, sub, orgB)
	}
}

// TestLocalAccountIdentityBeforeDomainVerification: an org's owner signs
// in with a password before the org verified any domain. The address is
// the org's own say-so, so it reaches the app as no address; the subject
// is the user id, which no IdP identifier of any org can equal.
func TestLocalAccountIdentityBeforeDomainVerification(t *testing.T) {
	org := uniqueOrg("hdr-local")
	owner := "owner@" + org + ".test"
	link := newLocalOrg(t, org, owner, "")
	b := newBrowserFrom(t, "127.0.0.31")
	if p := b.setPassword(link, strongPassword); p.status != http.StatusOK {
		t.Fatalf("set password: %d\n%s", p.status, p.body)
	}
	if p := b.backupSignIn(owner, strongPassword, org); p.status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d\n%s", p.status, p.body)
	}
	h := signedIn(t, b)
	if h["X-Sso-Org"] != org || h["X-Sso-Auth-Method"] != "password" {
		t.Fatalf("identity: %v", h)
	}
	for _, name := range []string{"X-Sso-User", "X-Sso-Email"} {
		if v, ok := h[name]; ok {
			t.Errorf("%s = %q, an address in a domain the org never verified", name, v)
		}
	}
	if id := h["X-Sso-User-Id"]; id == "" || h["X-Sso-Subject"] != id || strings.Contains(id, "/") {
		t.Errorf("subject %q, want the user id %q", h["X-Sso-Subject"], id)
	}
}
