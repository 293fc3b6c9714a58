package caddymodule_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/crewjam/saml"

	"github.com/ssogate/ssogate/examples/demo"
	"github.com/ssogate/ssogate/examples/demoidp"
	"github.com/ssogate/ssogate/store"
)

// transient is pysaml2's and SimpleSAMLphp's default subject: a NameID
// that is new at every sign-in, and no objectidentifier.
func transient(n int) demoidp.RespondOptions {
	return demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
		a.Subject.NameID.Format = string(saml.TransientNameIDFormat)
		a.Subject.NameID.Value = fmt.Sprintf("_transient-%d-%s", n, a.ID)
		demoidp.SetAttribute(a, demoidp.AttrObjectID)
	}}
}

func setExternalID(t *testing.T, st *store.Store, userID, externalID string) {
	t.Helper()
	if _, err := st.UpdateUser(demo.OrgID, userID, func(u *store.User) error {
		u.ExternalID = externalID
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestTransientNameIDSignsInTwice: a transient NameID was stored as the
// user's stable ID, and the second sign-in was refused as another person.
func TestTransientNameIDSignsInTwice(t *testing.T) {
	st := runningStore(t)
	alice, err := st.UserByUserName(demo.OrgID, demo.AliceEmail)
	if err != nil {
		t.Fatal(err)
	}
	// Alice is held to the demo IdP's objectidentifier, and a sign-in
	// that asserts no stable ID never takes over such a user (README:
	// Linking); an IdP with transient NameIDs has never linked one.
	unlinked(t, st, alice)
	for i := range 3 {
		b := newBrowser(t)
		if p := respond(t, b, demo.AliceEmail, transient(i)); p.status != http.StatusSeeOther {
			t.Fatalf("sign-in %d with a transient NameID: %d\n%s", i+1, p.status, p.body)
		}
		signedIn(t, b)
	}
	if alice, err = st.UserByUserName(demo.OrgID, demo.AliceEmail); err != nil {
		t.Fatal(err)
	}
	if alice.ExternalID != "" {
		t.Errorf("ExternalID = %q, want none: a transient NameID is no stable ID", alice.ExternalID)
	}
}

// unlinked clears u's stored IdP identifier for the test, and restores it
// after.
func unlinked(t *testing.T, st *store.Store, u *store.User) {
	t.Helper()
	setExternalID(t, st, u.ID, "")
	t.Cleanup(func() { setExternalID(t, st, u.ID, u.ExternalID) })
}

// TestUnlinkEndsALockOut: a record linked to a wrong identifier (as
// transient NameIDs were stored before) refuses the person once the IdP
// sends its real objectidentifier; the operator unlinks it, audited, and
// the next sign-in links the real one.
func TestUnlinkEndsALockOut(t *testing.T) {
	ctx := context.Background()
	st := runningStore(t)
	if p := respond(t, newBrowser(t), demo.AliceEmail, demoidp.RespondOptions{}); p.status != http.StatusSeeOther {
		t.Fatalf("control sign-in: %d", p.status)
	}
	alice, err := st.UserByUserName(demo.OrgID, demo.AliceEmail)
	if err != nil {
		t.Fatal(err)
	}
	real := alice.ExternalID
	if real == "" {
		t.Fatal("the demo IdP's objectidentifier was not linked")
	}
	setExternalID(t, st, alice.ID, "_transient-from-2025")
	t.Cleanup(func() { setExternalID(t, st, alice.ID, real) })

	p := respond(t, newBrowser(t), demo.AliceEmail, demoidp.RespondOptions{})
	if p.status != http.StatusForbidden || !strings.Contains(p.body, "does not match") {
		t.Fatalf("sign-in against a wrong link: want the 403 page, got %d\n%s", p.status, p.body)
	}

	orgURL := env.AdminURL + "/sso/orgs/" + demo.OrgID
	if _, err := env.Admin(ctx, http.MethodPost, orgURL+"/users/nobody@example.com/unlink", nil); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("unlinking an unknown user: %v, want 404", err)
	}
	out, err := env.Admin(ctx, http.MethodPost, orgURL+"/users/"+strings.ToUpper(demo.AliceEmail)+"/unlink", nil)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		UserID     string `json:"user_id"`
		PreviousID string `json:"previous_id"`
	}
	if err := json.Unmarshal(out, &res); err != nil || res.UserID != alice.ID || res.PreviousID != "_transient-from-2025" {
		t.Fatalf("unlink answered %s (%v)", out, err)
	}

	b := newBrowser(t)
	if p := respond(t, b, demo.AliceEmail, demoidp.RespondOptions{}); p.status != http.StatusSeeOther {
		t.Fatalf("sign-in after the unlink: %d\n%s", p.status, p.body)
	}
	signedIn(t, b)
	if u, err := st.GetUser(demo.OrgID, alice.ID); err != nil || u.ExternalID != real {
		t.Fatalf("after the sign-in ExternalID = %q (%v), want the IdP's %q", u.ExternalID, err, real)
	}

	audit, err := env.Admin(ctx, http.MethodGet, orgURL+"/audit?limit=1000", nil)
	if err != nil {
		t.Fatal(err)
	}
	var events []struct {
		Action  string            `json:"action"`
		Outcome string            `json:"outcome"`
		Details map[string]string `json:"details"`
	}
	if err := json.Unmarshal(audit, &events); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range events {
		if e.Action == "user.unlink" && e.Outcome == "success" && e.Details["user_id"] == alice.ID && e.Details["previous_id"] == "_transient-from-2025" {
			found = true
		}
	}
	if !found {
		t.Errorf("no user.unlink event in the audit trail: %s", audit)
	}
}

// TestOrgAdminUnlinksAUser: the org's own admins have the same tool in
// their JSON API, and cannot use it on SCIM-provisioned users.
func TestOrgAdminUnlinksAUser(t *testing.T) {
	st := runningStore(t)
	carol := &store.User{OrgID: demo.OrgID, UserName: "carol@example.com", ExternalID: "_carol-old", Active: true, Source: store.SourceSAML,
		Emails: []store.Email{{Value: "carol@example.com", Primary: true}}}
	dave := &store.User{OrgID: demo.OrgID, UserName: "dave@example.com", ExternalID: "scim-dave", Active: true, Source: store.SourceSCIM}
	for _, u := range []*store.User{carol, dave} {
		if err := st.CreateUser(u); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.DeleteUser(demo.OrgID, u.ID) })
	}

	b := newBrowser(t)
	if p := respond(t, b, demo.AliceEmail, demoidp.RespondOptions{}); p.status != http.StatusSeeOther {
		t.Fatalf("admin sign-in: %d", p.status)
	}
	csrf := b.csrfToken()
	if status, _, _ := b.api(http.MethodPost, "/sso/admin/api/users/"+carol.ID+"/unlink", nil, ""); status != http.StatusForbidden {
		t.Errorf("unlink without the CSRF token: %d, want 403", status)
	}
	status, body, _ := b.api(http.MethodPost, "/sso/admin/api/users/"+carol.ID+"/unlink", nil, csrf)
	if status != http.StatusOK || body["previous_id"] != "_carol-old" {
		t.Fatalf("unlink: %d %v", status, body)
	}
	if u, err := st.GetUser(demo.OrgID, carol.ID); err != nil || u.ExternalID != "" {
		t.Errorf("ExternalID = %q (%v) after the unlink", u.ExternalID, err)
	}
	status, body, _ = b.api(http.MethodPost, "/sso/admin/api/users/"+dave.ID+"/unlink", nil, csrf)
	if status != http.StatusConflict || !strings.Contains(fmt.Sprint(body["error"]), "SCIM") {
		t.Errorf("unlinking a SCIM user: %d %v, want 409 naming SCIM", status, body)
	}
	if u, err := st.GetUser(demo.OrgID, dave.ID); err != nil || u.ExternalID != "scim-dave" {
		t.Errorf("SCIM user's ExternalID = %q (%v), want it kept", u.ExternalID, err)
	}
	signedIn(t, b)

	// The Users page offers the same as a button, for linked users only.
	setExternalID(t, st, carol.ID, "_carol-again")
	page := b.get(env.GatewayURL + "/sso/admin/users")
	unlink := "/sso/admin/users/" + carol.ID + "/unlink"
	if page.status != http.StatusOK || !strings.Contains(page.body, unlink) {
		t.Fatalf("Users page (%d) has no Unlink SSO button for carol\n%s", page.status, page.body)
	}
	if strings.Contains(page.body, "/sso/admin/users/"+dave.ID+"/unlink") {
		t.Error("Users page offers to unlink a SCIM user")
	}
	p := b.post(env.GatewayURL+unlink, map[string][]string{"csrf": {csrf}})
	if p.status != http.StatusSeeOther || !strings.Contains(p.location, "done=unlinked") {
		t.Fatalf("Unlink SSO button: %d %q\n%s", p.status, p.location, p.body)
	}
	if u, err := st.GetUser(demo.OrgID, carol.ID); err != nil || u.ExternalID != "" {
		t.Errorf("ExternalID = %q (%v) after the button", u.ExternalID, err)
	}
	if p := b.get(env.GatewayURL + "/sso/admin/users"); strings.Contains(p.body, unlink) {
		t.Error("Users page still offers to unlink an unlinked user")
	}
}
