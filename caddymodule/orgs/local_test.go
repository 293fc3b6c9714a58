package orgs

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ssogate/ssogate/caddymodule/local"
	"github.com/ssogate/ssogate/store"
)

// linkToken extracts the token of a set-password URL and checks its shape.
func linkToken(t *testing.T, raw any) string {
	t.Helper()
	u, _ := raw.(string)
	tok, ok := strings.CutPrefix(u, "https://gw.example.net/sso/invite/")
	if !ok || !local.LooksLikeLinkToken(tok) {
		t.Fatalf("link %q", raw)
	}
	return tok
}

func TestCreateOrgMakesOwnerTheBackupLogin(t *testing.T) {
	e := newEnv(t)
	r := e.must(http.StatusCreated, "POST", "/sso/orgs", map[string]string{"id": "acme", "name": "Acme", "owner_email": "IT@Acme.com"})
	org := r.object(t)
	tok := linkToken(t, org["owner_invite_url"])
	exp, err := time.Parse(time.RFC3339, org["owner_invite_expires"].(string))
	if err != nil || exp.Sub(time.Now()) < 71*time.Hour || exp.Sub(time.Now()) > 73*time.Hour {
		t.Errorf("owner_invite_expires = %v (%v)", org["owner_invite_expires"], err)
	}
	owner, err := e.store.UserByUserName("acme", "it@acme.com")
	if err != nil {
		t.Fatal(err)
	}
	if owner.Source != store.SourceLocal || owner.Role != store.RoleAdmin || org["backup_login"] != owner.ID {
		t.Errorf("owner %+v, backup_login %v", owner, org["backup_login"])
	}
	inv, err := e.store.GetInvitation(local.HashLinkToken(tok))
	if err != nil || inv.UserID != owner.ID || inv.Purpose != store.InviteOwner {
		t.Errorf("invitation %+v, %v", inv, err)
	}

	// The link is shown once: never again in the org's view or audit trail.
	shown := e.must(http.StatusOK, "GET", "/sso/orgs/acme", nil)
	events := e.must(http.StatusOK, "GET", "/sso/orgs/acme/audit", nil)
	for _, raw := range [][]byte{shown.raw, events.raw} {
		if strings.Contains(string(raw), tok) || strings.Contains(string(raw), local.HashLinkToken(tok)) || strings.Contains(string(raw), "owner_invite_url") {
			t.Errorf("link leaked: %s", raw)
		}
	}
	for _, want := range []string{"org.create", "local.invite", "backup.set"} {
		if !strings.Contains(string(events.raw), `"`+want+`"`) {
			t.Errorf("audit lacks %s: %s", want, events.raw)
		}
	}

	b := e.must(http.StatusOK, "GET", "/sso/orgs/acme/backup-login", nil).object(t)
	if b["user_id"] != owner.ID || b["email"] != "it@acme.com" || b["ready"] != false {
		t.Errorf("backup view = %v", b)
	}
}

func TestOwnerAndInvitesOutsideOtherOrgsDomains(t *testing.T) {
	e := newEnv(t)
	e.readyOrg("acme", "acme.com")
	before := e.snapshot()
	// Neither the operator nor an org admin can give another org's domain
	// to a local account.
	r := e.must(http.StatusConflict, "POST", "/sso/orgs", map[string]string{"id": "evil", "name": "Evil", "owner_email": "ceo@acme.com"})
	if r.object(t)["field"] != "owner_email" {
		t.Errorf("error = %s", r.raw)
	}
	if e.snapshot() != before {
		t.Error("refused creation changed the store")
	}
	e.createOrg("evil")
	e.must(http.StatusConflict, "POST", "/sso/orgs/evil/local-users", map[string]string{"email": "cfo@ACME.com"})
	// Its own, pending or unclaimed domains are fine.
	e.must(http.StatusCreated, "POST", "/sso/orgs/evil/local-users", map[string]string{"email": "helper@contractor.example"})
	// The org's own verified domain too.
	e.must(http.StatusCreated, "POST", "/sso/orgs/acme/local-users", map[string]string{"email": "cfo@acme.com", "role": "admin"})
	e.must(http.StatusConflict, "POST", "/sso/orgs/acme/local-users", map[string]string{"email": "CFO@acme.com"})
	e.must(http.StatusBadRequest, "POST", "/sso/orgs/acme/local-users", map[string]string{"email": "x@acme.com", "role": "root"})
	e.must(http.StatusBadRequest, "POST", "/sso/orgs/acme/local-users", map[string]string{"email": "not-an-address"})
	e.must(http.StatusNotFound, "POST", "/sso/orgs/nope/local-users", map[string]string{"email": "x@nope.example"})
}

func TestBackupDesignationRules(t *testing.T) {
	e := newEnv(t)
	e.createOrg("acme")
	e.createOrg("beta")
	link := e.must(http.StatusCreated, "POST", "/sso/orgs/acme/local-users", map[string]string{"email": "bob@acme.example.com"}).object(t)
	bobID := link["user_id"].(string)

	// Never signed in (no password yet): refused, audited, unchanged.
	r := e.must(http.StatusConflict, "PUT", "/sso/orgs/acme/backup-login", map[string]string{"user": "bob@acme.example.com"})
	if !strings.Contains(string(r.raw), "not set a password") {
		t.Errorf("refusal = %s", r.raw)
	}
	if _, err := e.store.UpdateUser("acme", bobID, func(u *store.User) error { u.PasswordHash = "$argon2id$x"; return nil }); err != nil {
		t.Fatal(err)
	}
	r = e.must(http.StatusConflict, "PUT", "/sso/orgs/acme/backup-login", map[string]string{"user": bobID})
	if !strings.Contains(string(r.raw), "never signed in") {
		t.Errorf("refusal = %s", r.raw)
	}
	if _, err := e.store.UpdateUser("acme", bobID, func(u *store.User) error { u.LastLogin = time.Now(); return nil }); err != nil {
		t.Fatal(err)
	}
	// Eligible now; listed as such, then designated.
	b := e.must(http.StatusOK, "GET", "/sso/orgs/acme/backup-login", nil).object(t)
	if el := b["eligible"].([]any); len(el) != 1 || el[0].(map[string]any)["id"] != bobID {
		t.Errorf("eligible = %v", b["eligible"])
	}
	b = e.must(http.StatusOK, "PUT", "/sso/orgs/acme/backup-login", map[string]string{"user": "Bob@acme.example.com"}).object(t)
	if b["user_id"] != bobID || b["ready"] != true {
		t.Errorf("after designation: %v", b)
	}
	// Another org's account, or a non-local user, cannot be designated.
	e.must(http.StatusNotFound, "PUT", "/sso/orgs/beta/backup-login", map[string]string{"user": bobID})
	scim := &store.User{OrgID: "acme", UserName: "carol@acme.example.com", Active: true, Source: store.SourceSCIM}
	if err := e.store.CreateUser(scim); err != nil {
		t.Fatal(err)
	}
	e.must(http.StatusNotFound, "PUT", "/sso/orgs/acme/backup-login", map[string]string{"user": scim.ID})
	e.must(http.StatusBadRequest, "PUT", "/sso/orgs/acme/backup-login", map[string]string{"user": ""})

	// The backup login cannot be removed; the former one can.
	e.must(http.StatusConflict, "DELETE", "/sso/orgs/acme/local-users/"+bobID, nil)
	e.must(http.StatusNoContent, "DELETE", "/sso/orgs/acme/local-users/owner@acme.example.com", nil)
	e.must(http.StatusNotFound, "DELETE", "/sso/orgs/acme/local-users/"+scim.ID, nil)

	events, _ := e.store.ListAudit("acme", 100)
	var denied, set bool
	for _, ev := range events {
		if ev.Action == "backup.set" && ev.Outcome == OutcomeDenied {
			denied = true
		}
		if ev.Action == "backup.set" && ev.Outcome == OutcomeSuccess && ev.Details["to_id"] == bobID {
			set = true
		}
	}
	if !denied || !set {
		t.Errorf("audit: denied %v, set %v", denied, set)
	}
}

func TestResetBackup(t *testing.T) {
	e := newEnv(t)
	created := e.must(http.StatusCreated, "POST", "/sso/orgs", map[string]string{"id": "acme", "name": "Acme", "owner_email": "it@acme.example.com"}).object(t)
	first := linkToken(t, created["owner_invite_url"])

	r := e.must(http.StatusCreated, "POST", "/sso/orgs/acme/backup-login/reset", nil).object(t)
	second := linkToken(t, r["set_password_url"])
	if r["email"] != "it@acme.example.com" || second == first {
		t.Errorf("reset = %v", r)
	}
	if _, err := e.store.GetInvitation(local.HashLinkToken(first)); err == nil {
		t.Error("the earlier link still works")
	}
	if _, err := e.store.GetInvitation(local.HashLinkToken(second)); err != nil {
		t.Errorf("new link: %v", err)
	}

	// The backup account deleted behind our back (SCIM, say): reset
	// restores the owner as the backup login.
	if err := e.store.DeleteUser("acme", r["user_id"].(string)); err != nil {
		t.Fatal(err)
	}
	r = e.must(http.StatusCreated, "POST", "/sso/orgs/acme/backup-login/reset", nil).object(t)
	linkToken(t, r["set_password_url"])
	o, _ := e.store.GetOrg("acme")
	if o.BackupLogin != r["user_id"] || r["email"] != "it@acme.example.com" {
		t.Errorf("restored backup %q, link %v", o.BackupLogin, r)
	}
	events := e.must(http.StatusOK, "GET", "/sso/orgs/acme/audit", nil)
	if strings.Count(string(events.raw), `"backup.reset"`) != 2 {
		t.Errorf("audit: %s", events.raw)
	}
	e.must(http.StatusNotFound, "POST", "/sso/orgs/nope/backup-login/reset", nil)
}

func TestReinvite(t *testing.T) {
	e := newEnv(t)
	e.createOrg("acme")
	link := e.must(http.StatusCreated, "POST", "/sso/orgs/acme/local-users", map[string]string{"email": "bob@acme.example.com"}).object(t)
	old := linkToken(t, link["set_password_url"])
	again := e.must(http.StatusCreated, "POST", "/sso/orgs/acme/local-users/bob@acme.example.com/invite", nil).object(t)
	if linkToken(t, again["set_password_url"]) == old {
		t.Error("same link twice")
	}
	if _, _, err := e.store.RedeemInvitation(local.HashLinkToken(linkToken(t, again["set_password_url"])), "$argon2id$x"); err != nil {
		t.Fatal(err)
	}
	e.must(http.StatusConflict, "POST", "/sso/orgs/acme/local-users/bob@acme.example.com/invite", nil)
}

func TestListUsers(t *testing.T) {
	e := newEnv(t)
	e.readyOrg("acme", "acme.com")
	e.must(http.StatusCreated, "POST", "/sso/orgs/acme/local-users", map[string]string{"email": "invited@acme.com", "role": "admin"})
	add := func(name, source string, active bool) *store.User {
		u := &store.User{OrgID: "acme", UserName: name, Emails: []store.Email{{Value: name}}, Active: active, Source: source}
		if err := e.store.CreateUser(u); err != nil {
			t.Fatal(err)
		}
		return u
	}
	samlUser := add("saml@acme.com", store.SourceSAML, true)
	scimUser := add("scim@acme.com", store.SourceSCIM, true)
	add("gone@acme.com", store.SourceSCIM, false)

	list := func(q string) map[string]map[string]any {
		t.Helper()
		out := map[string]map[string]any{}
		for _, u := range e.must(http.StatusOK, "GET", "/sso/orgs/acme/users"+q, nil).array(t) {
			m := u.(map[string]any)
			out[m["user_name"].(string)] = m
		}
		return out
	}
	all := list("")
	if len(all) != 5 {
		t.Fatalf("users = %v", all)
	}
	for name, want := range map[string][3]string{
		"owner@acme.example.com": {"local", "admin", "active"}, // readyOrg signed the owner in
		"invited@acme.com":       {"local", "admin", "invited"},
		"saml@acme.com":          {"saml", "admin", "active"},
		"scim@acme.com":          {"scim", "user", "active"},
		"gone@acme.com":          {"scim", "user", "inactive"},
	} {
		u := all[name]
		if u["source"] != want[0] || u["role"] != want[1] || u["status"] != want[2] {
			t.Errorf("%s: %v, want %v", name, u, want)
		}
	}
	if all["owner@acme.example.com"]["backup_login"] != true || all["invited@acme.com"]["invite_expires"] == nil {
		t.Errorf("owner %v, invited %v", all["owner@acme.example.com"], all["invited@acme.com"])
	}
	if got := list("?status=invited"); len(got) != 1 {
		t.Errorf("invited = %v", got)
	}
	if got := list("?role=user&status=active"); len(got) != 1 || got["scim@acme.com"] == nil {
		t.Errorf("active users = %v", got)
	}

	// Once SCIM provisions the admin group, membership decides roles.
	g := &store.Group{OrgID: "acme", DisplayName: "Admins", ExternalID: "00g1", Members: []string{scimUser.ID}}
	if err := e.store.CreateGroup(g); err != nil {
		t.Fatal(err)
	}
	all = list("?role=admin")
	if all["scim@acme.com"] == nil || all["saml@acme.com"] != nil {
		t.Errorf("admins with SCIM group = %v (saml user %s)", all, samlUser.ID)
	}
	// Two provisioned groups with the mapped name and neither with its
	// ID: the name admits nobody (issue 16), and the list still loads.
	if err := e.store.DeleteGroup("acme", g.ID); err != nil {
		t.Fatal(err)
	}
	for _, members := range [][]string{{scimUser.ID}, nil} {
		if err := e.store.CreateGroup(&store.Group{OrgID: "acme", DisplayName: "ADMINS", Members: members}); err != nil {
			t.Fatal(err)
		}
	}
	all = list("?role=admin")
	if all["scim@acme.com"] != nil || all["saml@acme.com"] != nil {
		t.Errorf("admins with an ambiguous group name = %v", all)
	}
	e.must(http.StatusBadRequest, "GET", "/sso/orgs/acme/users?role=root", nil)
	e.must(http.StatusBadRequest, "GET", "/sso/orgs/acme/users?status=gone", nil)
	e.must(http.StatusNotFound, "GET", "/sso/orgs/nope/users", nil)
}
