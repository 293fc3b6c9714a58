package caddymodule_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/ssogate/ssogate/examples/demo"
)

// End-to-end tests of local accounts: owners and invitations, password
// sign-in at /sso/backup, SSO enforcement, the backup login while the IdP
// is down, throttling, and the org admin's users page. Each test signs in
// from its own loopback address (127.0.0.x), so the per-source throttle of
// one test never affects another.

const strongPassword = "orbit lantern meadow 42"

// newBrowserFrom is a browser whose connections come from ip.
func newBrowserFrom(t *testing.T, ip string) *browser {
	t.Helper()
	b := newBrowser(t)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	b.client.Transport = resendOnDrop{&http.Transport{DialContext: d.DialContext}}
	return b
}

// adminJSON calls the operator admin API and decodes a JSON object.
func adminJSON(t *testing.T, method, path string, body any) map[string]any {
	t.Helper()
	out, err := env.Admin(context.Background(), method, env.AdminURL+"/sso"+path, body)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if len(bytes.TrimSpace(out)) > 0 {
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, out)
		}
	}
	return m
}

// adminStatus calls the operator admin API and returns the status only.
func adminStatus(t *testing.T, method, path string, body any) int {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, env.AdminURL+"/sso"+path, nil)
	if rd != nil {
		req, _ = http.NewRequest(method, env.AdminURL+"/sso"+path, rd)
		req.Header.Set("Content-Type", "application/json")
	}
	req.Close = true // a config load may have replaced the admin server
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// uniqueOrg makes an org ID unique to this run: a deleted org's audit
// trail stays, and tests may run more than once (-count).
func uniqueOrg(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1_000_000_000)
}

// newLocalOrg creates an inactive org with an owner and a verified domain
// through the operator API, deleted when the test ends, and returns the
// owner's set-password link.
func newLocalOrg(t *testing.T, id, owner, domain string) string {
	t.Helper()
	created := adminJSON(t, http.MethodPost, "/orgs", map[string]any{"id": id, "name": "Org " + id, "owner_email": owner})
	t.Cleanup(func() { _, _ = env.Admin(context.Background(), http.MethodDelete, env.AdminURL+"/sso/orgs/"+id, nil) })
	if domain != "" {
		adminJSON(t, http.MethodPost, "/orgs/"+id+"/domains", map[string]any{"name": domain})
		adminJSON(t, http.MethodPost, "/orgs/"+id+"/domains/"+domain+"/verify", map[string]any{"force": true})
	}
	link, _ := created["owner_invite_url"].(string)
	if !strings.HasPrefix(link, env.GatewayURL+"/sso/invite/") {
		t.Fatalf("owner_invite_url = %q", link)
	}
	return link
}

// formByAction returns the named inputs of the form whose action ends
// with suffix.
func formByAction(t *testing.T, body, suffix string) url.Values {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var found url.Values
	var walk func(n *html.Node, in url.Values)
	walk = func(n *html.Node, in url.Values) {
		if n.Type == html.ElementNode && n.Data == "form" && found == nil && strings.HasSuffix(attr(n, "action"), suffix) {
			in = url.Values{}
			found = in
		}
		if in != nil && n.Type == html.ElementNode && n.Data == "input" && attr(n, "name") != "" {
			in.Set(attr(n, "name"), attr(n, "value"))
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, in)
		}
	}
	walk(doc, nil)
	if found == nil {
		t.Fatalf("no form with action …%s in page:\n%s", suffix, body)
	}
	return found
}

// setPassword follows a set-password link and chooses pw.
func (b *browser) setPassword(link, pw string) page {
	b.t.Helper()
	p := b.get(link)
	if p.status != http.StatusOK {
		b.t.Fatalf("GET %s: %d\n%s", link, p.status, p.body)
	}
	f := formByAction(b.t, p.body, strings.TrimPrefix(link, env.GatewayURL))
	f.Set("password", pw)
	f.Set("confirm", pw)
	return b.post(link, f)
}

// backupSignIn signs in with a password at /sso/backup (?org= when given).
func (b *browser) backupSignIn(email, pw, org string) page {
	b.t.Helper()
	u := env.GatewayURL + "/sso/backup"
	if org != "" {
		u += "?org=" + org
	}
	p := b.get(u)
	if p.status != http.StatusOK {
		b.t.Fatalf("GET /sso/backup: %d\n%s", p.status, p.body)
	}
	f := formByAction(b.t, p.body, "/sso/backup")
	f.Set("email", email)
	f.Set("password", pw)
	return b.post(env.GatewayURL+"/sso/backup", f)
}

// api calls the org admin JSON API with the browser's session.
func (b *browser) api(method, path string, body any, csrf string) (int, map[string]any, []any) {
	b.t.Helper()
	var rd *strings.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = strings.NewReader(string(raw))
	}
	req, _ := http.NewRequest(method, env.GatewayURL+path, nil)
	if rd != nil {
		req, _ = http.NewRequest(method, env.GatewayURL+path, rd)
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if csrf != "" {
		req.Header.Set("X-CSRF-Token", csrf)
	}
	p := b.do(req)
	var obj map[string]any
	var arr []any
	_ = json.Unmarshal([]byte(p.body), &obj)
	_ = json.Unmarshal([]byte(p.body), &arr)
	return p.status, obj, arr
}

// csrfToken asks the org admin API for the session's CSRF token.
func (b *browser) csrfToken() string {
	b.t.Helper()
	status, obj, _ := b.api(http.MethodGet, "/sso/admin/api/session", nil, "")
	tok, _ := obj["csrf_token"].(string)
	if status != http.StatusOK || tok == "" {
		b.t.Fatalf("session API: %d %v", status, obj)
	}
	return tok
}

func auditActions(t *testing.T, org string) map[string]int {
	t.Helper()
	out, err := env.Admin(context.Background(), http.MethodGet, env.AdminURL+"/sso/orgs/"+org+"/audit?limit=1000", nil)
	if err != nil {
		t.Fatal(err)
	}
	var events []struct {
		Action, Outcome string
		Details         map[string]string
		Count           int // of an aggregated event
	}
	if err := json.Unmarshal(out, &events); err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, e := range events {
		n[e.Action+"/"+e.Outcome] += max(e.Count, 1)
	}
	if strings.Contains(string(out), strongPassword) || strings.Contains(string(out), "argon2id") || strings.Contains(string(out), "/invite/") {
		t.Errorf("audit trail holds a secret: %s", out)
	}
	return n
}

// closedURL is an http URL on loopback where nothing listens.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr + "/sso"
}

// TestOwnerConfiguresThenSSOEnforcement walks an organization's life: the
// owner sets a password through the link from `org create`, signs in while
// the org is inactive, invites a colleague and designates the backup
// login; activation then ends the colleague's password session and refuses
// their password sign-in, while the owner (the backup login) keeps signing
// in with a password even though the IdP's SSO URL is unreachable.
func TestOwnerConfiguresThenSSOEnforcement(t *testing.T) {
	const domain = "lcl-life.test"
	org := uniqueOrg("lcl-life")
	owner, colleague := "owner@"+domain, "carol@"+domain
	link := newLocalOrg(t, org, owner, domain)

	ob := newBrowserFrom(t, "127.0.0.11")
	// The link page shows whose password it sets; weak passwords are refused.
	if p := ob.get(link); p.status != http.StatusOK || !strings.Contains(p.body, owner) {
		t.Fatalf("link page: %d\n%s", p.status, p.body)
	}
	if p := ob.setPassword(link, "password1234"); p.status != http.StatusBadRequest || !strings.Contains(p.body, "too common") {
		t.Fatalf("common password: %d\n%s", p.status, p.body)
	}
	if p := ob.setPassword(link, owner); p.status != http.StatusBadRequest || !strings.Contains(p.body, "email address") {
		t.Fatalf("email as password: %d\n%s", p.status, p.body)
	}
	if p := ob.setPassword(link, strongPassword); p.status != http.StatusOK || !strings.Contains(p.body, "password is set") {
		t.Fatalf("set password: %d\n%s", p.status, p.body)
	}
	// Used: the link is dead for everyone.
	if p := newBrowserFrom(t, "127.0.0.11").get(link); p.status != http.StatusGone {
		t.Errorf("used link: %d", p.status)
	}

	// Wrong password and unknown address look the same.
	wrong := ob.backupSignIn(owner, "not the password at all", "")
	unknown := ob.backupSignIn("nobody@"+domain, "not the password at all", "")
	if wrong.status != http.StatusUnauthorized || unknown.status != http.StatusUnauthorized ||
		strings.ReplaceAll(wrong.body, owner, "X") != strings.ReplaceAll(unknown.body, "nobody@"+domain, "X") {
		t.Errorf("wrong password (%d) and unknown address (%d) answered differently", wrong.status, unknown.status)
	}
	p := ob.backupSignIn(owner, strongPassword, org)
	if p.status != http.StatusSeeOther || p.location != "/" {
		t.Fatalf("owner sign-in: %d %q\n%s", p.status, p.location, p.body)
	}
	h := signedIn(t, ob)
	if h["X-Sso-Auth-Method"] != "password" || h["X-Sso-Org"] != org || h["X-Sso-Email"] != owner {
		t.Errorf("owner's identity: %v", h)
	}

	// The owner configures: the users page, an invitation, the backup login.
	if p := ob.get(env.GatewayURL + "/sso/admin/users"); p.status != http.StatusOK || !strings.Contains(p.body, owner) || !strings.Contains(p.body, "backup login") {
		t.Fatalf("users page: %d\n%s", p.status, p.body)
	}
	csrf := ob.csrfToken()
	if status, _, _ := ob.api(http.MethodPost, "/sso/admin/api/users", map[string]any{"email": colleague}, ""); status != http.StatusForbidden {
		t.Errorf("invite without CSRF token: %d", status)
	}
	status, inv, _ := ob.api(http.MethodPost, "/sso/admin/api/users", map[string]any{"email": colleague, "role": "user"}, csrf)
	if status != http.StatusCreated {
		t.Fatalf("invite: %d %v", status, inv)
	}
	carolID := inv["user_id"].(string)
	if status, _, list := ob.api(http.MethodGet, "/sso/admin/api/users?status=invited", nil, ""); status != http.StatusOK || len(list) != 1 {
		t.Errorf("invited users: %d %v", status, list)
	}
	if status, obj, _ := ob.api(http.MethodPut, "/sso/admin/api/backup-login", map[string]any{"user": carolID}, csrf); status != http.StatusConflict {
		t.Errorf("designating a colleague who never signed in: %d %v", status, obj)
	}

	cb := newBrowserFrom(t, "127.0.0.12")
	if p := cb.setPassword(inv["set_password_url"].(string), "quiet river stone 7"); p.status != http.StatusOK {
		t.Fatalf("colleague's password: %d\n%s", p.status, p.body)
	}
	if p := cb.backupSignIn(colleague, "quiet river stone 7", ""); p.status != http.StatusSeeOther {
		t.Fatalf("colleague's sign-in: %d\n%s", p.status, p.body)
	}
	if h := signedIn(t, cb); h["X-Sso-Auth-Method"] != "password" {
		t.Errorf("colleague: %v", h)
	}
	// A local user is no org admin.
	if p := cb.get(env.GatewayURL + "/sso/admin/users"); p.status != http.StatusForbidden {
		t.Errorf("users page for a non-admin: %d", p.status)
	}
	// The designation moves to the colleague (signed in once now) and back.
	for _, who := range []string{colleague, owner} {
		if status, obj, _ := ob.api(http.MethodPut, "/sso/admin/api/backup-login", map[string]any{"user": who}, csrf); status != http.StatusOK || obj["email"] != who {
			t.Fatalf("designating %s: %d %v", who, status, obj)
		}
	}

	// The operator finishes the setup and activates, with an IdP whose SSO
	// URL is unreachable.
	dead := closedURL(t)
	adminJSON(t, http.MethodPut, "/orgs/"+org+"/idp", map[string]any{
		"entity_id": env.IdP.EntityID(), "sso_url": dead, "certificates": []string{env.IdP.CertificatePEM()},
	})
	adminJSON(t, http.MethodPut, "/orgs/"+org+"/admin-group", map[string]any{"name": "admins", "id": "g1"})
	adminJSON(t, http.MethodPost, "/orgs/"+org+"/scim-token", nil)
	for _, step := range []string{"register", "saml", "scim", "users"} {
		adminJSON(t, http.MethodPut, "/orgs/"+org+"/steps/"+step, map[string]any{"done": true})
	}
	adminJSON(t, http.MethodPost, "/orgs/"+org+"/activate", nil)

	// The colleague's password session ends on the next request, and a
	// new password sign-in is told to use SSO.
	if status, _ := cb.whoami(); status != http.StatusUnauthorized {
		t.Errorf("colleague's password session after activation: %d", status)
	}
	p = cb.backupSignIn(colleague, "quiet river stone 7", "")
	if p.status != http.StatusForbidden || !strings.Contains(p.body, "single sign-on") {
		t.Errorf("colleague after activation: %d\n%s", p.status, p.body)
	}
	// SSO for the colleague goes to the IdP, which is down.
	sso := cb.post(env.GatewayURL+"/sso/login", url.Values{"email": {colleague}})
	if sso.status != http.StatusSeeOther || !strings.HasPrefix(sso.location, dead) {
		t.Fatalf("SSO start: %d %q", sso.status, sso.location)
	}
	if _, err := cb.client.Get(sso.location); err == nil {
		t.Fatal("the IdP's SSO URL answered; the test needs it down")
	}

	// The owner's session survives activation and now reports "backup";
	// a fresh sign-in works too, IdP down or not.
	if h := signedIn(t, ob); h["X-Sso-Auth-Method"] != "backup" {
		t.Errorf("owner's session after activation: %v", h)
	}
	nb := newBrowserFrom(t, "127.0.0.13")
	if p := nb.backupSignIn(owner, strongPassword, ""); p.status != http.StatusSeeOther {
		t.Fatalf("backup sign-in with the IdP down: %d\n%s", p.status, p.body)
	}
	if h := signedIn(t, nb); h["X-Sso-Auth-Method"] != "backup" || h["X-Sso-Email"] != owner {
		t.Errorf("backup identity: %v", h)
	}

	// Moving the designation ends the old backup sessions.
	adminJSON(t, http.MethodPut, "/orgs/"+org+"/backup-login", map[string]any{"user": colleague})
	if status, _ := nb.whoami(); status != http.StatusUnauthorized {
		t.Errorf("former backup's session: %d", status)
	}
	if p := cb.backupSignIn(colleague, "quiet river stone 7", ""); p.status != http.StatusSeeOther {
		t.Errorf("new backup login: %d\n%s", p.status, p.body)
	}

	a := auditActions(t, org)
	for _, want := range []string{"local.password.set/success", "login.password/success", "login.backup/success", "login.backup/failure",
		"local.invite/success", "backup.set/success", "backup.set/denied", "login.password/denied"} {
		if a[want] == 0 {
			t.Errorf("audit lacks %s: %v", want, a)
		}
	}
}

// TestBackupLoginWhileIdPIsDown: the demo org, active with a working IdP,
// loses its IdP (SSO URL unreachable); the operator's reset-backup gives
// the owner a link, and the owner signs in with a password.
func TestBackupLoginWhileIdPIsDown(t *testing.T) {
	dead := closedURL(t)
	adminJSON(t, http.MethodPut, "/orgs/"+demo.OrgID+"/idp", map[string]any{
		"entity_id": env.IdP.EntityID(), "sso_url": dead, "certificates": []string{env.IdP.CertificatePEM()},
	})
	t.Cleanup(func() {
		adminJSON(t, http.MethodPut, "/orgs/"+demo.OrgID+"/idp", map[string]any{
			"entity_id": env.IdP.EntityID(), "sso_url": env.IdP.SSOURL(), "certificates": []string{env.IdP.CertificatePEM()},
		})
	})

	b := newBrowserFrom(t, "127.0.0.14")
	sso := b.post(env.GatewayURL+"/sso/login", url.Values{"email": {demo.AliceEmail}})
	if sso.status != http.StatusSeeOther || !strings.HasPrefix(sso.location, dead) {
		t.Fatalf("SSO start: %d %q", sso.status, sso.location)
	}
	if _, err := b.client.Get(sso.location); err == nil {
		t.Fatal("the IdP answered")
	}

	reset := adminJSON(t, http.MethodPost, "/orgs/"+demo.OrgID+"/backup-login/reset", nil)
	if reset["email"] != demo.AliceEmail {
		t.Fatalf("reset-backup: %v", reset)
	}
	if p := b.setPassword(reset["set_password_url"].(string), strongPassword); p.status != http.StatusOK {
		t.Fatalf("set password: %d\n%s", p.status, p.body)
	}
	if p := b.backupSignIn(demo.AliceEmail, strongPassword, ""); p.status != http.StatusSeeOther {
		t.Fatalf("backup sign-in: %d\n%s", p.status, p.body)
	}
	h := signedIn(t, b)
	if h["X-Sso-Auth-Method"] != "backup" || h["X-Sso-Org"] != demo.OrgID || h["X-Sso-Email"] != demo.AliceEmail {
		t.Errorf("identity: %v", h)
	}
	// Bob has no local account: no password gets him in.
	if p := newBrowserFrom(t, "127.0.0.14").backupSignIn(demo.BobEmail, demo.DefaultPassword, ""); p.status != http.StatusUnauthorized {
		t.Errorf("bob: %d", p.status)
	}
	if a := auditActions(t, demo.OrgID); a["backup.reset/success"] == 0 || a["login.backup/success"] == 0 {
		t.Errorf("audit: %v", a)
	}
}

// reloadWithSSO reloads the demo config with extra `sso` app settings,
// and restores the original config when the test ends. Throttles survive
// it (see TestThrottlesSurviveReload): tests keep to their own source
// addresses and accounts.
func reloadWithSSO(t *testing.T, extra map[string]any) {
	t.Helper()
	var cfg map[string]any
	if err := json.Unmarshal(env.CaddyConfig(), &cfg); err != nil {
		t.Fatal(err)
	}
	sso := cfg["apps"].(map[string]any)["sso"].(map[string]any)
	for k, v := range extra {
		sso[k] = v
	}
	raw, _ := json.Marshal(cfg)
	loadConfig(t, raw)
	t.Cleanup(func() { loadConfig(t, env.CaddyConfig()) })
}

func TestExpiredAndUsedLinksRefused(t *testing.T) {
	reloadWithSSO(t, map[string]any{"invite_ttl": "3s", "password_hashing": map[string]any{"time": 1, "memory_kib": 8192, "threads": 1}})
	org := uniqueOrg("lcl-links")
	link := newLocalOrg(t, org, "owner@lcl-links.test", "")
	b := newBrowserFrom(t, "127.0.0.15")
	if p := b.get(link); p.status != http.StatusOK {
		t.Fatalf("fresh link: %d", p.status)
	}
	f := formByAction(t, b.get(link).body, strings.TrimPrefix(link, env.GatewayURL))
	time.Sleep(3100 * time.Millisecond)
	if p := b.get(link); p.status != http.StatusGone {
		t.Errorf("expired link page: %d", p.status)
	}
	f.Set("password", strongPassword)
	f.Set("confirm", strongPassword)
	if p := b.post(link, f); p.status != http.StatusGone {
		t.Errorf("expired link post: %d", p.status)
	}
	// A new link (reset) works once; the token cannot be guessed or bent.
	fresh := adminJSON(t, http.MethodPost, "/orgs/"+org+"/backup-login/reset", nil)["set_password_url"].(string)
	if p := b.setPassword(fresh, strongPassword); p.status != http.StatusOK {
		t.Fatalf("fresh link: %d\n%s", p.status, p.body)
	}
	f = formByAction(t, b.get(env.GatewayURL+"/sso/backup").body, "/sso/backup") // a valid CSRF token for the posts below
	f.Set("password", "another long passphrase")
	f.Set("confirm", "another long passphrase")
	for _, u := range []string{fresh, env.GatewayURL + "/sso/invite/" + strings.Repeat("A", 43), env.GatewayURL + "/sso/invite/x"} {
		if p := b.post(u, f); p.status != http.StatusGone {
			t.Errorf("POST %s: %d", u, p.status)
		}
	}
	if p := b.backupSignIn("owner@lcl-links.test", strongPassword, ""); p.status != http.StatusSeeOther {
		t.Errorf("the password set through the link does not work: %d", p.status)
	}
	if a := auditActions(t, org); a["local.password.set/success"] != 1 {
		t.Errorf("audit: %v", a)
	}
}

// TestThrottlingKicksInAndLifts: repeated failures lock the account (even
// against the right password) and the source; locks lift with time; the
// browser the owner used before is not locked out.
func TestThrottlingKicksInAndLifts(t *testing.T) {
	// Cheap hashes for the many attempts below.
	reloadWithSSO(t, map[string]any{"password_hashing": map[string]any{"time": 1, "memory_kib": 8192, "threads": 1}})
	const owner = "owner@lcl-throttle.test"
	org := uniqueOrg("lcl-throttle")
	link := newLocalOrg(t, org, owner, "")
	trusted := newBrowserFrom(t, "127.0.0.16")
	trusted.setPassword(link, strongPassword) // this browser is now trusted for the owner

	attacker := newBrowserFrom(t, "127.0.0.17")
	for i := range 5 { // the fifth failure starts a lock
		if p := attacker.backupSignIn(owner, fmt.Sprint("guess number ", i), ""); p.status != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i+1, p.status)
		}
	}
	// Locked for a second: the right password is refused from anywhere
	// untrusted, with Retry-After.
	p := newBrowserFrom(t, "127.0.0.18").backupSignIn(owner, strongPassword, "")
	if p.status != http.StatusTooManyRequests || p.header.Get("Retry-After") == "" || !strings.Contains(p.body, "Too many") {
		t.Fatalf("locked account: %d %q\n%s", p.status, p.header.Get("Retry-After"), p.body)
	}
	// The owner's own browser gets in regardless.
	if p := trusted.backupSignIn(owner, strongPassword, ""); p.status != http.StatusSeeOther {
		t.Errorf("trusted browser during the lock: %d\n%s", p.status, p.body)
	}
	// The lock lifts.
	time.Sleep(1100 * time.Millisecond)
	if p := newBrowserFrom(t, "127.0.0.18").backupSignIn(owner, strongPassword, ""); p.status != http.StatusSeeOther {
		t.Fatalf("after the lock: %d\n%s", p.status, p.body)
	}

	// One source spraying many addresses locks itself out.
	spray := newBrowserFrom(t, "127.0.0.19")
	for i := range 20 {
		if p := spray.backupSignIn(fmt.Sprintf("user%d@lcl-throttle.test", i), "guess guess guess", ""); p.status != http.StatusUnauthorized {
			t.Fatalf("spray %d: %d", i, p.status)
		}
	}
	if p := spray.backupSignIn(owner, strongPassword, ""); p.status != http.StatusTooManyRequests {
		t.Errorf("locked source: %d", p.status)
	}
	time.Sleep(1100 * time.Millisecond)
	if p := spray.backupSignIn(owner, strongPassword, ""); p.status != http.StatusSeeOther {
		t.Errorf("source after its lock: %d", p.status)
	}

	a := auditActions(t, org)
	if a["login.lock/denied"] == 0 || a["login.backup/denied"] == 0 || a["login.backup/failure"] < 5 {
		t.Errorf("audit: %v", a)
	}
}

// TestCrossOrgAttemptsRefused: one org's admin, account or password never
// reaches another org.
func TestCrossOrgAttemptsRefused(t *testing.T) {
	reloadWithSSO(t, map[string]any{"password_hashing": map[string]any{"time": 1, "memory_kib": 8192, "threads": 1}})
	orgA, orgB := uniqueOrg("lcl-cross-a"), uniqueOrg("lcl-cross-b")
	linkA := newLocalOrg(t, orgA, "owner@lcl-cross-a.test", "lcl-cross-a.test")
	linkB := newLocalOrg(t, orgB, "owner@lcl-cross-b.test", "lcl-cross-b.test")
	a := newBrowserFrom(t, "127.0.0.20")
	a.setPassword(linkA, strongPassword)
	b := newBrowserFrom(t, "127.0.0.21")
	b.setPassword(linkB, "second org passphrase")
	if p := b.backupSignIn("owner@lcl-cross-b.test", "second org passphrase", ""); p.status != http.StatusSeeOther {
		t.Fatalf("B's owner: %d", p.status)
	}
	aOwner := adminJSON(t, http.MethodGet, "/orgs/"+orgA, nil)["backup_login"].(string)
	csrf := b.csrfToken()

	if p := b.get(env.GatewayURL + "/sso/admin/users?org=" + orgA); p.status != http.StatusForbidden {
		t.Errorf("B's admin on A's users page: %d", p.status)
	}
	if status, _, _ := b.api(http.MethodGet, "/sso/admin/api/users?org="+orgA, nil, ""); status != http.StatusForbidden {
		t.Errorf("B's admin on A's user list: %d", status)
	}
	if status, _, _ := b.api(http.MethodDelete, "/sso/admin/api/users/"+aOwner, nil, csrf); status != http.StatusNotFound {
		t.Errorf("B's admin removing A's owner: %d", status)
	}
	if status, _, _ := b.api(http.MethodPut, "/sso/admin/api/backup-login", map[string]any{"user": aOwner}, csrf); status != http.StatusNotFound {
		t.Errorf("B's admin designating A's owner: %d", status)
	}
	if status, _, _ := b.api(http.MethodPost, "/sso/admin/api/users", map[string]any{"email": "ceo@lcl-cross-a.test"}, csrf); status != http.StatusConflict {
		t.Errorf("B's admin inviting into A's domain: %d", status)
	}
	if status := adminStatus(t, http.MethodPost, "/orgs/"+orgB+"/local-users", map[string]any{"email": "cfo@lcl-cross-a.test"}); status != http.StatusConflict {
		t.Errorf("operator adding to B an account in A's domain: %d", status)
	}
	// B's session is no key to A's list, and A's user IDs are unknown to B.
	if _, _, list := b.api(http.MethodGet, "/sso/admin/api/users", nil, ""); len(list) != 1 {
		t.Errorf("B's list: %v", list)
	}
	// B's password does not open A's account, with or without A's org hint.
	for _, hint := range []string{"", orgA, orgB} {
		if p := newBrowserFrom(t, "127.0.0.22").backupSignIn("owner@lcl-cross-a.test", "second org passphrase", hint); p.status != http.StatusUnauthorized {
			t.Errorf("B's password for A's owner (hint %q): %d", hint, p.status)
		}
	}
	// CSRF from another site is refused even with the token.
	req, _ := http.NewRequest(http.MethodPost, env.GatewayURL+"/sso/admin/users/invite", strings.NewReader(url.Values{"csrf": {csrf}, "email": {"x@lcl-cross-b.test"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Origin", "https://evil.example")
	if p := b.do(req); p.status != http.StatusForbidden {
		t.Errorf("cross-site form post: %d", p.status)
	}
	// A form post without the pre-session cookie's token is refused.
	if p := newBrowserFrom(t, "127.0.0.22").post(env.GatewayURL+"/sso/backup", url.Values{"email": {"owner@lcl-cross-a.test"}, "password": {strongPassword}}); p.status != http.StatusForbidden {
		t.Errorf("sign-in without CSRF token: %d", p.status)
	}
}

// TestUsersPageAccess: no session → sign-in page or 401; a SAML admin of
// the demo org gets the page and can invite through the HTML form.
func TestUsersPageAccess(t *testing.T) {
	anon := newBrowser(t)
	if p := anon.get(env.GatewayURL + "/sso/admin/users"); p.status != http.StatusFound || !strings.HasPrefix(p.location, "/sso/login") {
		t.Errorf("anonymous page: %d %q", p.status, p.location)
	}
	if status, _, _ := anon.api(http.MethodGet, "/sso/admin/api/users", nil, ""); status != http.StatusUnauthorized {
		t.Errorf("anonymous API: %d", status)
	}

	b := newBrowser(t)
	b.signIn(demo.AliceEmail, demo.DefaultPassword, "")
	p := b.get(env.GatewayURL + "/sso/admin/users")
	if p.status != http.StatusOK || !strings.Contains(p.body, demo.AliceEmail) {
		t.Fatalf("SAML admin's users page: %d\n%s", p.status, p.body)
	}
	f := formByAction(t, p.body, "/sso/admin/users/invite")
	f.Set("email", "dave@"+demo.Domain)
	f.Set("role", "user")
	// The post redirects (a reload must not invite again); the page it
	// leads to shows the link once, with a Copy button, and says the
	// account cannot sign in with a password while SSO is active.
	p = b.post(env.GatewayURL+"/sso/admin/users/invite", f)
	if p.status != http.StatusSeeOther || strings.Contains(p.location, "invite/") {
		t.Fatalf("invite form: %d %q\n%s", p.status, p.location, p.body)
	}
	shown := resolve(env.GatewayURL+"/sso/admin/users", p.location)
	p = b.get(shown)
	if p.status != http.StatusOK || !strings.Contains(p.body, env.GatewayURL+"/sso/invite/") ||
		!strings.Contains(p.body, `data-copy="invite-link"`) || !strings.Contains(p.body, "cannot sign in with its password") {
		t.Fatalf("invitation link page: %d\n%s", p.status, p.body)
	}
	if again := b.get(shown); strings.Contains(again.body, "/sso/invite/") {
		t.Errorf("the invitation link is shown again on reload")
	}
	if list := b.get(env.GatewayURL + "/sso/admin/users?status=invited"); !strings.Contains(list.body, "dave@"+demo.Domain) || strings.Contains(list.body, "/sso/invite/") {
		t.Errorf("invited list (the link must not show again):\n%s", list.body)
	}
	// Remove dave through the page's form.
	_, _, users := b.api(http.MethodGet, "/sso/admin/api/users?status=invited", nil, "")
	var daveID string
	for _, u := range users {
		if m := u.(map[string]any); m["user_name"] == "dave@"+demo.Domain {
			daveID = m["id"].(string)
		}
	}
	if daveID == "" {
		t.Fatalf("dave not listed: %v", users)
	}
	p = b.get(env.GatewayURL + "/sso/admin/users")
	f = formByAction(t, p.body, "/sso/admin/users/"+daveID+"/remove")
	if p := b.post(env.GatewayURL+"/sso/admin/users/"+daveID+"/remove", f); p.status != http.StatusSeeOther {
		t.Errorf("remove: %d\n%s", p.status, p.body)
	}
	if _, _, users := b.api(http.MethodGet, "/sso/admin/api/users?status=invited", nil, ""); len(users) != 0 {
		t.Errorf("after removal: %v", users)
	}
	// The backup login cannot be removed.
	backup := adminJSON(t, http.MethodGet, "/orgs/"+demo.OrgID, nil)["backup_login"].(string)
	if status, _, _ := b.api(http.MethodDelete, "/sso/admin/api/users/"+backup, nil, b.csrfToken()); status != http.StatusConflict {
		t.Errorf("removing the backup login: %d", status)
	}
}

// The IdP stays the source of truth for the person behind the backup
// login: provisioning that deactivates them ends the backup session and
// refuses the password, and reactivation gives the way in back.
func TestSCIMDeactivationStopsTheBackupLogin(t *testing.T) {
	reset := adminJSON(t, http.MethodPost, "/orgs/"+demo.OrgID+"/backup-login/reset", nil)
	if reset["email"] != demo.AliceEmail {
		t.Fatalf("reset-backup: %v", reset)
	}
	b := newBrowserFrom(t, "127.0.0.41")
	if p := b.setPassword(reset["set_password_url"].(string), strongPassword); p.status != http.StatusOK {
		t.Fatalf("set password: %d\n%s", p.status, p.body)
	}
	if p := b.backupSignIn(demo.AliceEmail, strongPassword, ""); p.status != http.StatusSeeOther {
		t.Fatalf("backup sign-in: %d\n%s", p.status, p.body)
	}
	signedIn(t, b)

	c := newSCIMClient(t, demo.OrgID)
	id := c.provision(demo.AliceEmail)
	c.setActive(id, false)
	t.Cleanup(func() { c.setActive(id, true) })
	assertSignedOut(t, b)
	if p := newBrowserFrom(t, "127.0.0.41").backupSignIn(demo.AliceEmail, strongPassword, ""); p.status == http.StatusSeeOther {
		t.Fatalf("deactivated backup login signed in: %d", p.status)
	}

	c.setActive(id, true)
	again := newBrowserFrom(t, "127.0.0.41")
	if p := again.backupSignIn(demo.AliceEmail, strongPassword, ""); p.status != http.StatusSeeOther {
		t.Fatalf("reactivated backup sign-in: %d\n%s", p.status, p.body)
	}
	signedIn(t, again)
}
