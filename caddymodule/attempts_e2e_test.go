package caddymodule_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/crewjam/saml"

	"github.com/ssogate/ssogate/examples/demo"
	"github.com/ssogate/ssogate/examples/demoidp"
	"github.com/ssogate/ssogate/store"
)

// withoutAttribute drops an attribute from the assertion, as an IdP
// without that claim configured sends it.
func withoutAttribute(name string) func(*saml.Assertion) {
	return func(a *saml.Assertion) {
		for i := range a.AttributeStatements {
			attrs := a.AttributeStatements[i].Attributes[:0]
			for _, at := range a.AttributeStatements[i].Attributes {
				if at.Name != name {
					attrs = append(attrs, at)
				}
			}
			a.AttributeStatements[i].Attributes = attrs
		}
	}
}

// TestGroupRefusalSaysWhatArrived: a sign-in refused for want of the admin
// group tells the user to be added to the group only when the IdP sent
// groups; without a groups attribute it says the IdP sends none, and the
// attempt's fix says how to add the claim.
func TestGroupRefusalSaysWhatArrived(t *testing.T) {
	st := runningStore(t)

	p := respond(t, newBrowser(t), demo.AliceEmail, demoidp.RespondOptions{Mutate: withoutAttribute(demoidp.AttrGroups)})
	if p.status != http.StatusForbidden {
		t.Fatalf("no groups attribute: want 403, got %d\n%s", p.status, p.body)
	}
	if strings.Contains(p.body, "add you to") || !strings.Contains(p.body, "does not send your group") {
		t.Errorf("no groups attribute: the page should say the IdP sends no groups:\n%s", p.body)
	}
	a := checkAttemptRecorded(t, st, p.body, "no-groups")
	if a.Email != demo.AliceEmail || a.Shape.GroupValues != 0 || !strings.Contains(a.Fix, "group claim") {
		t.Errorf("attempt: email %q, group values %d, fix %q", a.Email, a.Shape.GroupValues, a.Fix)
	}
	for _, n := range a.Shape.AttributeNames {
		if n == demoidp.AttrGroups {
			t.Errorf("attribute names list %q, which did not arrive", n)
		}
	}

	p = respond(t, newBrowser(t), demo.BobEmail, demoidp.RespondOptions{})
	if p.status != http.StatusForbidden || !strings.Contains(p.body, "add you to the "+demo.AdminGroupName) {
		t.Errorf("Bob, who has groups: want 403 asking to be added to the group, got %d\n%s", p.status, p.body)
	}
	a = checkAttemptRecorded(t, st, p.body, "not-in-group")
	if a.Shape.GroupValues != 1 || !containsString(a.Shape.AttributeNames, demoidp.AttrGroups) {
		t.Errorf("Bob's attempt: %d group values, attribute names %q; want 1 and groups among them", a.Shape.GroupValues, a.Shape.AttributeNames)
	}
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestSignInAttemptsAPI: the org admin's JSON view of the attempts,
// newest first, found by reference code (as typed, in any case), scoped
// to the admin's own organization, and never carrying attribute values
// other than the subject's address.
func TestSignInAttemptsAPI(t *testing.T) {
	admin := newBrowser(t)
	if p := respond(t, admin, demo.AliceEmail, demoidp.RespondOptions{}); p.status != http.StatusSeeOther {
		t.Fatalf("Alice's sign-in: %d\n%s", p.status, p.body)
	}
	refused := respond(t, newBrowser(t), demo.AliceEmail, demoidp.RespondOptions{Signing: demoidp.SignNothing})
	m := refPattern.FindStringSubmatch(refused.body)
	if refused.status != http.StatusForbidden || m == nil {
		t.Fatalf("unsigned response: want a 403 page with a reference code, got %d\n%s", refused.status, refused.body)
	}
	ref := m[1]

	type attemptJSON struct {
		Ref     string             `json:"ref"`
		Outcome string             `json:"outcome"`
		Reason  string             `json:"reason"`
		Fix     string             `json:"fix"`
		Email   string             `json:"email"`
		Shape   *store.SignInShape `json:"shape"`
	}
	list := func(b *browser, query string) (int, []attemptJSON, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, env.GatewayURL+"/sso/admin/api/signin-attempts"+query, nil)
		req.Header.Set("Accept", "application/json")
		p := b.do(req)
		var out struct {
			Attempts []attemptJSON `json:"attempts"`
		}
		if p.status == http.StatusOK {
			if err := json.Unmarshal([]byte(p.body), &out); err != nil {
				t.Fatalf("attempts JSON: %v\n%s", err, p.body)
			}
		}
		return p.status, out.Attempts, p.body
	}

	status, all, body := list(admin, "")
	if status != http.StatusOK || len(all) < 2 {
		t.Fatalf("list: %d, %d attempts\n%.2000s", status, len(all), body)
	}
	if all[0].Ref != ref || all[0].Outcome != "refused" || all[0].Reason != "signature" || all[0].Email != "" {
		t.Errorf("newest attempt: %+v; want the refused unsigned one (%s), without an unverified address", all[0], ref)
	}
	if all[1].Outcome != "success" || all[1].Email != demo.AliceEmail || all[1].Shape == nil || all[1].Shape.GroupValues != len(demo.AliceGroups()) ||
		!containsString(all[1].Shape.Signed, "assertion") || len(all[1].Shape.SignatureAlgorithms) == 0 || all[1].Shape.ClockDifference == nil {
		t.Errorf("Alice's sign-in: %+v %+v", all[1], all[1].Shape)
	}
	// Group names are attribute values: only their number is kept.
	if strings.Contains(body, demo.AdminGroupName) || strings.Contains(body, "staff") {
		t.Errorf("the attempts carry group names:\n%.3000s", body)
	}

	status, one, _ := list(admin, "?ref="+url.QueryEscape(" "+strings.ToLower(ref)+" "))
	if status != http.StatusOK || len(one) != 1 || one[0].Ref != ref {
		t.Errorf("by reference code: %d %+v", status, one)
	}
	if status, none, _ := list(admin, "?ref=not-a-code"); status != http.StatusOK || len(none) != 0 {
		t.Errorf("a malformed code: %d, %d attempts; want none", status, len(none))
	}
	if status, _, _ := list(newBrowser(t), "?ref="+ref); status != http.StatusUnauthorized {
		t.Errorf("without a session: %d, want 401", status)
	}

	// Another organization's admin finds nothing of this one's.
	org := uniqueOrg("attempts")
	other, _ := orgAdminBrowser(t, org, org+".test", "")
	if status, got, _ := list(other, "?ref="+ref); status != http.StatusOK || len(got) != 0 {
		t.Errorf("another org's admin: %d %+v", status, got)
	}
	if status, got, _ := list(other, ""); status != http.StatusOK || len(got) != 0 {
		t.Errorf("another org's admin lists %d attempts of others (%d)", len(got), status)
	}
}

// TestTestSignIn: an org admin's Test sign-in before activation runs one
// round trip through the IdP, with every check of a real sign-in, and
// shows its result on the attempts page; it creates no user and starts no
// session (the admin stays signed in as before). A real sign-in to the
// inactive organization stays refused.
func TestTestSignIn(t *testing.T) {
	st := runningStore(t)
	org := uniqueOrg("testsso")
	domain := org + ".test"
	owner, _ := orgAdminBrowser(t, org, domain, "")
	base := "/orgs/" + org
	adminJSON(t, http.MethodPost, base+"/domains", map[string]any{"name": domain})
	adminJSON(t, http.MethodPost, base+"/domains/"+domain+"/verify", map[string]any{"force": true})
	adminJSON(t, http.MethodPut, base+"/admin-group", map[string]any{"name": demo.AdminGroupName, "id": "00g-test-admins"})
	adminJSON(t, http.MethodPut, base+"/idp", map[string]any{
		"entity_id": env.IdP.EntityID(), "sso_url": env.IdP.SSOURL(), "certificates": []string{env.IdP.CertificatePEM()},
	})
	md := owner.get(env.GatewayURL + "/sso/saml/" + org + "/metadata")
	if err := env.IdP.RegisterServiceProvider(org, []byte(md.body)); err != nil {
		t.Fatal(err)
	}
	tester := "tester@" + domain
	asTester := func(a *saml.Assertion) {
		a.Subject.NameID.Value = tester
		demoidp.SetAttribute(a, demoidp.AttrName, tester)
		demoidp.SetAttribute(a, demoidp.AttrObjectID, "00u-tester")
	}
	sessions := func() int {
		n, err := st.CountOrgSessions(org)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := sessions()

	// runTest presses Test sign-in and posts the IdP's answer.
	runTest := func(mutate func(*saml.Assertion)) page {
		t.Helper()
		p := owner.get(env.GatewayURL + "/sso/admin/signin-attempts")
		if p.status != http.StatusOK {
			t.Fatalf("attempts page: %d\n%s", p.status, p.body)
		}
		p = owner.post(env.GatewayURL+"/sso/admin/signin-attempts/test", formByAction(t, p.body, "/admin/signin-attempts/test"))
		if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location, env.IdP.SSOURL()) {
			t.Fatalf("Test sign-in: want 303 to the IdP, got %d %q\n%s", p.status, p.location, p.body)
		}
		acs, form, err := env.IdP.RespondWith(p.location, demo.AliceEmail, demoidp.RespondOptions{Mutate: mutate})
		if err != nil {
			t.Fatal(err)
		}
		p = owner.post(acs, form)
		if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location, "/sso/admin/signin-attempts?ref=") {
			t.Fatalf("the test's answer: want 303 to its result, got %d %q\n%s", p.status, p.location, p.body)
		}
		return owner.get(env.GatewayURL + p.location)
	}

	p := runTest(asTester)
	if p.status != http.StatusOK || !strings.Contains(p.body, `<span class="pill ok">signed in</span> <span class="pill">test</span><br>`+tester) {
		t.Fatalf("the test's result page:\n%s", p.body)
	}
	if _, err := st.UserByUserName(org, tester); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the Test sign-in saved the user: %v", err)
	}
	if n := sessions(); n != before {
		t.Errorf("the Test sign-in changed the org's sessions from %d to %d", before, n)
	}
	if status, obj, _ := owner.api(http.MethodGet, "/sso/admin/api/session", nil, ""); status != http.StatusOK || !strings.HasPrefix(strings.ToLower(anyString(obj["user"])+anyString(obj["email"])), "owner@") {
		t.Errorf("the owner's session after the test: %d %v", status, obj)
	}

	// A refused test shows the refusal and its fix.
	p = runTest(func(a *saml.Assertion) { asTester(a); withoutAttribute(demoidp.AttrGroups)(a) })
	if !strings.Contains(p.body, `<span class="pill warn">refused</span> <span class="pill">test</span>`) || !strings.Contains(p.body, "Add a group claim") {
		t.Errorf("a refused test's result page:\n%s", p.body)
	}

	// Outside a test, the inactive organization refuses the same IdP.
	b := newBrowser(t)
	acs, form, err := env.IdP.UnsolicitedWith(org, demo.AliceEmail, demoidp.RespondOptions{Mutate: asTester})
	if err != nil {
		t.Fatal(err)
	}
	if p := b.post(acs, form); p.status != http.StatusForbidden || !strings.Contains(p.body, "not active") {
		t.Errorf("unsolicited response to the inactive org: %d\n%s", p.status, p.body)
	}
	if n := sessions(); n != before {
		t.Errorf("sessions changed from %d to %d", before, n)
	}
}

func anyString(v any) string {
	s, _ := v.(string)
	return s
}
