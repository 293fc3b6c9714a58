package caddymodule_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ssogate/ssogate/examples/demoidp"
)

// chromiumPath is where Debian's chromium package puts the browser.
const chromiumPath = "/usr/bin/chromium"

// newChromium starts headless Chromium for the test, or skips the test
// when there is none, unless SSOGATE_BROWSER_TESTS=required (CI), which
// makes a missing browser a failure.
func newChromium(t *testing.T) context.Context {
	t.Helper()
	if _, err := exec.LookPath(chromiumPath); err != nil {
		if os.Getenv("SSOGATE_BROWSER_TESTS") == "required" {
			t.Fatalf("SSOGATE_BROWSER_TESTS=required but no browser: %v", err)
		}
		t.Skipf("no browser at %s (set SSOGATE_BROWSER_TESTS=required to fail instead)", chromiumPath)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox, // containers run the tests as root
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}

// do runs browser actions and fails the test, naming the stage, on error.
func do(t *testing.T, ctx context.Context, stage string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", stage, err)
	}
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// screenshot saves a full-page PNG under SSOGATE_SCREENSHOTS (the README's
// docs/img when refreshing them), else in the test's temporary directory.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("SSOGATE_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), buf, 0o644); err != nil {
		t.Fatal(err)
	}
}

// openStep expands a step's section (clicking its summary would close an
// open one).
func openStep(t *testing.T, ctx context.Context, step string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("step-`+step+`").open = true`)); err != nil {
		t.Fatalf("open step %s: %v", step, err)
	}
}

// tick sets a step's "Configuration in the IdP Directory is done" box and
// saves, then waits for the step to turn green.
func tick(t *testing.T, ctx context.Context, step string) {
	t.Helper()
	sec := "#step-" + step
	openStep(t, ctx, step)
	do(t, ctx, "tick "+step,
		chromedp.WaitVisible(chromedp.CSS(sec+" form.tick input[name=done]")),
		chromedp.Click(chromedp.CSS(sec+" form.tick input[name=done]")),
		chromedp.Click(chromedp.CSS(sec+" form.tick button")),
		chromedp.WaitVisible(chromedp.CSS("details.step.done"+sec)),
	)
}

// TestBrowserConfiguratorToSSO drives the configurator in headless
// Chromium as a new organization's owner would: sign in with the owner's
// password, Start configuring, then all seven steps (the domain verified
// through a real DNS lookup, one refused SAML setting on the way),
// Activate, and finally sign in with SSO through the organization's own
// IdP. It saves the README's screenshots on the way.
func TestBrowserConfiguratorToSSO(t *testing.T) {
	ctx := newChromium(t)
	dnsSrv := startDNS(t, fastHashing)

	org := uniqueOrg("acme")
	if os.Getenv("SSOGATE_SCREENSHOTS") != "" {
		org = "acme" // readable values in the README's pictures
	}
	domain := org + ".test"
	owner, jane := "it-admin@"+domain, "jane@"+domain
	const groupName, groupID = "ssogate-admins", "00g8acmeadmins"

	// The organization's IdP, which the admin connects in step 4.
	idpSrv := httptest.NewUnstartedServer(nil)
	idpURL := "http://" + idpSrv.Listener.Addr().String()
	idp, err := demoidp.New(demoidp.Config{BaseURL: idpURL, Users: []demoidp.User{
		{Email: jane, Password: strongPassword, DisplayName: "Jane Doe", Groups: []string{groupName}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	idpSrv.Config.Handler = idp.Handler()
	idpSrv.Start()
	t.Cleanup(idpSrv.Close)

	created := adminJSON(t, http.MethodPost, "/orgs", map[string]any{"id": org, "name": "Acme Corporation", "owner_email": owner})
	t.Cleanup(func() { _, _ = env.Admin(context.Background(), http.MethodDelete, env.AdminURL+"/sso/orgs/"+org, nil) })
	link := created["owner_invite_url"].(string)
	gw := env.GatewayURL

	// The owner chooses a password through the link and signs in.
	do(t, ctx, "set password",
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.CSS("input[name=password]")),
		chromedp.SendKeys(chromedp.CSS("input[name=password]"), strongPassword),
		chromedp.SendKeys(chromedp.CSS("input[name=confirm]"), strongPassword),
		chromedp.Click(chromedp.CSS("form button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS(".notice")), // "Your password is set."
	)
	do(t, ctx, "password sign-in",
		chromedp.Navigate(gw+"/sso/backup?org="+org+"&return=/sso/admin/"),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), owner),
		chromedp.SendKeys(chromedp.ID("password"), strongPassword),
		chromedp.Click(chromedp.CSS("form button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS(`form[action$="/admin/start"] button`)),
	)
	if s := text(t, ctx, "main, .wrap"); !strings.Contains(s, "Before you start") {
		t.Errorf("first visit: %q", s)
	}
	do(t, ctx, "start configuring",
		chromedp.Click(chromedp.CSS(`form[action$="/admin/start"] button`)),
		chromedp.WaitVisible(chromedp.CSS("#step-domains[open]")),
	)
	// The backup login defaults to the admin who started.
	if s := text(t, ctx, "#step-backup summary"); !strings.Contains(s, "Done") {
		t.Errorf("backup step after Start configuring: %q", s)
	}

	// 1. Domains: add, publish the TXT record, verify.
	txtSel := `[id="txt-value-` + domain + `"]`
	do(t, ctx, "add domain",
		chromedp.SendKeys(chromedp.ID("domain-name"), domain),
		chromedp.Click(chromedp.CSS(`form[action$="/admin/domains"] button`)),
		chromedp.WaitVisible(chromedp.CSS(txtSel)),
	)
	// The copy buttons appear only when the page's script runs, which the
	// CSP allows by its hash.
	do(t, ctx, "copy buttons", chromedp.WaitVisible(chromedp.CSS(`button[data-copy="txt-value-`+domain+`"]`)))
	screenshot(t, ctx, "configurator-domains.png")
	txt := text(t, ctx, txtSel)
	if !strings.HasPrefix(txt, "ssogate-verification=") {
		t.Fatalf("TXT value on the page: %q", txt)
	}
	dnsSrv.set(domain, txt)
	do(t, ctx, "verify domain",
		chromedp.Click(chromedp.CSS(`form[action$="/admin/domains/verify"] button`)),
		chromedp.WaitVisible(chromedp.CSS("details.step.done#step-domains")),
	)

	// 2. Register the app: the SP values are on the page; tick.
	entityID := text(t, ctx, "#sp-entity-2")
	if entityID != gw+"/sso/saml/"+org {
		t.Errorf("SP entity ID on the page: %q", entityID)
	}
	tick(t, ctx, "register")

	// 3. Group mapping.
	openStep(t, ctx, "groups")
	do(t, ctx, "group mapping",
		chromedp.WaitVisible(chromedp.ID("group-name")),
		chromedp.SendKeys(chromedp.ID("group-name"), groupName),
		chromedp.SendKeys(chromedp.ID("group-id"), groupID),
		chromedp.Click(chromedp.CSS(`form[action$="/admin/group"] button`)),
		chromedp.WaitVisible(chromedp.CSS("details.step.done#step-groups")),
	)

	// Mid-way: three steps green, the SAML step open.
	openStep(t, ctx, "saml")
	do(t, ctx, "open SAML", chromedp.WaitVisible(chromedp.ID("idp-entity")))
	screenshot(t, ctx, "configurator-midway.png")

	// 4. SAML: a plain-http SSO URL is refused next to its field, with the
	// input kept; then the right one.
	do(t, ctx, "SAML with a bad SSO URL",
		chromedp.SetValue(chromedp.ID("idp-entity"), idp.EntityID()),
		chromedp.SetValue(chromedp.ID("idp-sso"), "http://acme.okta.example/app/sso/saml"),
		chromedp.SetValue(chromedp.ID("idp-cert"), idp.CertificatePEM()),
		chromedp.Click(chromedp.CSS(`#step-saml form[action$="/admin/saml"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("idp-sso-err")),
	)
	if s := text(t, ctx, "#idp-sso-err"); !strings.Contains(strings.ToLower(s), "https") {
		t.Errorf("SSO URL error: %q", s)
	}
	if v, _ := chromedp.Run(ctx, chromedp.Value(chromedp.ID("idp-entity"))); v != idp.EntityID() {
		t.Errorf("entity ID not kept after the error: %q", v)
	}
	screenshot(t, ctx, "configurator-error.png")
	do(t, ctx, "SAML",
		chromedp.SetValue(chromedp.ID("idp-sso"), idp.SSOURL()),
		chromedp.Click(chromedp.CSS(`#step-saml form[action$="/admin/saml"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("#step-saml[open] table.dom")), // the saved certificate is listed
	)
	if s := text(t, ctx, "#step-saml table.dom"); !strings.Contains(s, "Expires") {
		t.Errorf("certificate list: %q", s)
	}
	tick(t, ctx, "saml")

	// 5. SCIM: generate the token, shown once; tick.
	openStep(t, ctx, "scim")
	do(t, ctx, "SCIM token",
		chromedp.Click(chromedp.CSS(`form[action$="/admin/scim-token"] button`)),
		chromedp.WaitVisible(chromedp.ID("scim-token")),
	)
	screenshot(t, ctx, "configurator-scim.png")
	token := text(t, ctx, "#scim-token")
	scimURL := text(t, ctx, "#scim-url")
	tick(t, ctx, "scim")
	if strings.Contains(text(t, ctx, "body"), token) {
		t.Errorf("the SCIM token is shown again after the next request")
	}
	// The token works, at the URL the page shows.
	req, _ := http.NewRequest(http.MethodGet, scimURL+"/Users", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("SCIM with the page's token: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// 6. Users.
	tick(t, ctx, "users")

	// 7 is green already; Activate appears and works.
	do(t, ctx, "activate",
		chromedp.WaitVisible(chromedp.CSS(`form[action$="/admin/activate"] button`)),
		chromedp.Click(chromedp.CSS(`form[action$="/admin/activate"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`form[action$="/admin/deactivate"] button`)),
	)
	if s := text(t, ctx, ".status"); !strings.Contains(s, "Integration active") || !strings.Contains(s, "7 of 7") {
		t.Errorf("status after activation: %q", s)
	}
	screenshot(t, ctx, "configurator-done.png")

	// The IdP learns about the gateway's SP from its metadata, as an IT
	// admin would import it.
	md, err := http.Get(gw + "/sso/saml/" + org + "/metadata")
	if err != nil {
		t.Fatal(err)
	}
	mdXML, _ := io.ReadAll(md.Body)
	md.Body.Close()
	if err := idp.RegisterServiceProvider(org, mdXML); err != nil {
		t.Fatal(err)
	}

	// Sign out, then in again with SSO as Jane.
	do(t, ctx, "sign out",
		chromedp.Click(chromedp.CSS(`form[action$="/logout"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`form[action$="/sso/login"]`)),
	)
	do(t, ctx, "SSO sign-in: email",
		chromedp.Navigate(gw+"/sso/login?return=/app/home"),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), jane),
		chromedp.Click(chromedp.CSS("form button[type=submit]")),
	)
	waitCtx, cancelWait := context.WithTimeout(ctx, 15*time.Second)
	defer cancelWait()
	if err := chromedp.Do(waitCtx, chromedp.WaitVisible(chromedp.ID("user"))); err != nil { // the IdP's login form
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		body, _ := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS("body")))
		t.Fatalf("IdP login form: %v at %s\n%s", err, loc, body)
	}
	do(t, ctx, "SSO sign-in: IdP",
		chromedp.SendKeys(chromedp.ID("user"), jane),
		chromedp.SendKeys(chromedp.CSS("input[name=password]"), strongPassword),
		chromedp.Click(chromedp.CSS("form button[type=submit]")),
	)
	deadline := time.Now().Add(20 * time.Second)
	for {
		loc, err := chromedp.Run(ctx, chromedp.Location())
		if err == nil && loc == gw+"/app/home" {
			break
		}
		if time.Now().After(deadline) {
			body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
			t.Fatalf("SSO sign-in did not reach the app: at %q\n%s", loc, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if s := text(t, ctx, "body"); !strings.Contains(s, jane) || !strings.Contains(s, org) {
		t.Errorf("upstream page after SSO sign-in lacks the identity:\n%s", s)
	}

	// Jane is in the admin group, so the configurator is hers too. Her
	// Deactivate ends SSO at once, her own SAML session included: the
	// redirect after the post lands on the sign-in page, where her domain
	// no longer leads to SSO.
	do(t, ctx, "deactivate",
		chromedp.Navigate(gw+"/sso/admin/"),
		chromedp.WaitVisible(chromedp.CSS(`form[action$="/admin/deactivate"] button`)),
		chromedp.Click(chromedp.CSS(`form[action$="/admin/deactivate"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`form[action$="/sso/login"]`)),
		chromedp.SendKeys(chromedp.ID("email"), jane),
		chromedp.Click(chromedp.CSS("form button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("#email-error, .error")),
	)
	if s := text(t, ctx, "body"); !strings.Contains(s, "not set up for") {
		t.Errorf("sign-in after deactivation:\n%s", s)
	}
	if v := adminJSON(t, http.MethodGet, "/orgs/"+org, nil); v["state"] != "inactive" || v["state_changed_by"] != jane {
		t.Errorf("after Jane's Deactivate: %v by %v", v["state"], v["state_changed_by"])
	}
}
