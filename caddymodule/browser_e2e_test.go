package caddymodule_test

import (
	"context"
	"encoding/json"
	"fmt"
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
	// Generous: a shared 2-core machine, and axe-core checks every page.
	ctx, cancelTimeout := context.WithTimeout(ctx, 8*time.Minute)
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

// tick presses a step's "Mark as done" and waits for the step to turn
// green.
func tick(t *testing.T, ctx context.Context, step string) {
	t.Helper()
	sec := "#step-" + step
	openStep(t, ctx, step)
	do(t, ctx, "tick "+step,
		chromedp.WaitVisible(chromedp.CSS(sec+` form.tick button[name=done]`)),
		chromedp.Click(chromedp.CSS(sec+` form.tick button[name=done]`)),
		chromedp.WaitVisible(chromedp.CSS("details.step.done"+sec)),
	)
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// location is the page's address, path and query, without the host.
func location(t *testing.T, ctx context.Context) string {
	return eval[string](t, ctx, `location.pathname + location.search`)
}

// onPage fails unless the browser shows a page at path (a GET after the
// post's redirect, so a reload repeats nothing), not the post's address.
func onPage(t *testing.T, ctx context.Context, stage, path string) {
	t.Helper()
	loc := location(t, ctx)
	if p, _, _ := strings.Cut(loc, "?"); p != path {
		t.Errorf("%s: the browser is at %s, not at %s", stage, loc, path)
	}
}

// waitFor waits until js is true on the page, across the navigation a
// click started.
func waitFor(t *testing.T, ctx context.Context, stage, js string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js)); err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not %s", stage, js)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// focused is the id of the element that has the focus.
func focused(t *testing.T, ctx context.Context) string {
	return eval[string](t, ctx, `document.activeElement ? document.activeElement.id : ""`)
}

// axeSource is axe-core's axe.min.js, which .ci/run installs with npm and
// names in SSOGATE_AXE_JS. Without it the checks are skipped, unless
// SSOGATE_BROWSER_TESTS=required (CI), which makes that a failure.
func axeSource(t *testing.T) string {
	t.Helper()
	path := os.Getenv("SSOGATE_AXE_JS")
	if path == "" {
		if os.Getenv("SSOGATE_BROWSER_TESTS") == "required" {
			t.Fatal("SSOGATE_BROWSER_TESTS=required but SSOGATE_AXE_JS does not name axe-core's axe.min.js (.ci/run installs it)")
		}
		return ""
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading axe-core: %v", err)
	}
	return string(b)
}

// checkA11y runs axe-core on the page, every collapsible section open, and
// fails on any serious or critical WCAG 2.1 A/AA violation.
func checkA11y(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	src := axeSource(t)
	if src == "" {
		t.Logf("axe-core not installed: accessibility of %s not checked", page)
		return
	}
	// DevTools evaluation is not subject to the page's CSP, so the
	// pages' own policy stays as strict as it is for users.
	eval[bool](t, ctx, src+";document.querySelectorAll('details').forEach(function (d) { d.open = true }); true")
	type violation struct {
		ID, Impact, Help string
		Nodes            []string
	}
	vs, err := chromedp.Run(ctx, chromedp.Evaluate[[]violation](`axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}).then(function (r) {
		return r.violations.filter(function (v) { return v.impact === "serious" || v.impact === "critical" }).map(function (v) {
			return {ID: v.id, Impact: v.impact, Help: v.help, Nodes: v.nodes.slice(0, 5).map(function (n) { return n.target.join(" ") + " " + (n.failureSummary || "") })};
		});
	})`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("axe on %s: %v", page, err)
	}
	for _, v := range vs {
		b, _ := json.MarshalIndent(v.Nodes, "  ", "  ")
		t.Errorf("axe, %s: %s (%s): %s\n  %s", page, v.ID, v.Impact, v.Help, b)
	}
}

// shots saves the page at desktop width and at 360 px (a phone), and
// fails if the phone view scrolls sideways.
func shots(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	screenshot(t, ctx, name+".png")
	do(t, ctx, "phone width", chromedp.EmulateViewport(360, 780))
	if w := eval[int](t, ctx, `document.documentElement.scrollWidth`); w > 360 {
		t.Errorf("%s at 360 px is %d px wide", name, w)
	}
	screenshot(t, ctx, name+"-360.png")
	do(t, ctx, "desktop width", chromedp.EmulateViewport(1280, 900))
}

// TestBrowserConfiguratorToSSO drives the configurator in headless
// Chromium as a new organization's owner would: sign in with the owner's
// password, Start configuring, then all seven steps (the domain verified
// through a real DNS lookup after a refused first try, one refused SAML
// setting on the way, the SCIM token generated, reloaded, rotated),
// choose who may change SSO, Activate, invite a user, and finally sign in
// with SSO through the organization's own IdP, once as someone who may
// not change SSO and once as someone who may and deactivates it. Every
// form's result is a GET (no reload repeats a post), every page passes
// axe-core, and the README's screenshots are saved on the way.
func TestBrowserConfiguratorToSSO(t *testing.T) {
	ctx := newChromium(t)
	dnsSrv := startDNS(t, fastHashing)

	org := uniqueOrg("acme")
	if os.Getenv("SSOGATE_SCREENSHOTS") != "" {
		org = "acme" // readable values in the README's pictures
	}
	domain := org + ".test"
	owner, jane, joe := "it-admin@"+domain, "jane@"+domain, "joe@"+domain
	const groupName, groupID = "ssogate-users", "00g8acmeusers"
	const cfgName, cfgID = "ssogate-config", "00g8acmeconfig"

	// The organization's IdP, which the admin connects in step 4. Jane
	// may change SSO; Joe only signs in.
	idpSrv := httptest.NewUnstartedServer(nil)
	idpURL := "http://" + idpSrv.Listener.Addr().String()
	idp, err := demoidp.New(demoidp.Config{BaseURL: idpURL, Users: []demoidp.User{
		{Email: jane, Password: strongPassword, DisplayName: "Jane Doe", Groups: []string{groupName, cfgName}},
		{Email: joe, Password: strongPassword, DisplayName: "Joe Bloggs", Groups: []string{groupName}},
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

	// The owner chooses a password through the link and signs in, the
	// first time with a typo.
	do(t, ctx, "set-password page",
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.CSS("input[name=password]")),
	)
	if s := text(t, ctx, "main p"); strings.Contains(s, "..") {
		t.Errorf("set-password page: %q", s)
	}
	checkA11y(t, ctx, "set password")
	do(t, ctx, "set password",
		chromedp.SendKeys(chromedp.CSS("input[name=password]"), strongPassword),
		chromedp.SendKeys(chromedp.CSS("input[name=confirm]"), strongPassword),
		chromedp.Click(chromedp.CSS("form button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS(".notice")), // "Your password is set."
	)
	if title := eval[string](t, ctx, `document.title`); strings.Contains(title, "· Sign in") {
		t.Errorf("title: %q", title)
	}
	do(t, ctx, "password sign-in, wrong password",
		chromedp.Navigate(gw+"/sso/backup?org="+org+"&return=/sso/admin/"),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), owner),
		chromedp.SendKeys(chromedp.ID("password"), strongPassword+"x"),
		chromedp.Click(chromedp.CSS("form button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("form-error")),
	)
	if inv := eval[string](t, ctx, `document.getElementById("email").getAttribute("aria-invalid") + " " + document.getElementById("password").getAttribute("aria-invalid")`); inv != "true true" {
		t.Errorf("aria-invalid on the refused sign-in's inputs: %q", inv)
	}
	if f := focused(t, ctx); f != "email" {
		t.Errorf("focus after a refused sign-in: %q", f)
	}
	checkA11y(t, ctx, "password sign-in, refused")
	do(t, ctx, "password sign-in",
		chromedp.SetValue(chromedp.ID("password"), strongPassword),
		chromedp.Click(chromedp.CSS("form button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS(`form[action$="/admin/start"] button`)),
	)
	if s := text(t, ctx, "main, .wrap"); !strings.Contains(s, "Before you start") {
		t.Errorf("first visit: %q", s)
	}
	do(t, ctx, "re-authentication page",
		chromedp.Navigate(gw+"/sso/reauth?return=/sso/admin/"),
		chromedp.WaitVisible(chromedp.CSS(`form[action$="/sso/reauth"] button`)),
	)
	checkA11y(t, ctx, "re-authentication")
	do(t, ctx, "back to the configurator",
		chromedp.Navigate(gw+"/sso/admin/"),
		chromedp.WaitVisible(chromedp.CSS(`form[action$="/admin/start"] button`)),
	)
	checkA11y(t, ctx, "configurator, before you start")
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
	onPage(t, ctx, "add domain", "/sso/admin/")
	// The copy buttons appear only when the page's script runs, which the
	// CSP allows by its hash.
	do(t, ctx, "copy buttons", chromedp.WaitVisible(chromedp.CSS(`button[data-copy="txt-value-`+domain+`"]`)))
	shots(t, ctx, "configurator-domains")
	txt := text(t, ctx, txtSel)
	if !strings.HasPrefix(txt, "ssogate-verification=") {
		t.Fatalf("TXT value on the page: %q", txt)
	}

	// Verify before the record is published: refused, on a GET page, the
	// reason once, next to the row, with the focus; the table stays in
	// its card.
	do(t, ctx, "verify too early",
		chromedp.Click(chromedp.CSS(`form[action$="/admin/domains/verify"] button`)),
		chromedp.WaitVisible(chromedp.ID("verify-err")),
	)
	onPage(t, ctx, "refused Verify", "/sso/admin/")
	if f := focused(t, ctx); f != "verify-err" {
		t.Errorf("focus after a refused Verify: %q", f)
	}
	reason := text(t, ctx, "#verify-err")
	if n := eval[int](t, ctx, fmt.Sprintf(`document.body.innerText.split(%q).length - 1`, reason)); n != 1 {
		t.Errorf("the refusal %q is shown %d times", reason, n)
	}
	fits := `(function () { var t = document.querySelector("#step-domains table.dom").getBoundingClientRect(), c = document.querySelector("#step-domains").getBoundingClientRect(); return t.right <= c.right && document.documentElement.scrollWidth <= window.innerWidth; })()`
	if !eval[bool](t, ctx, fits) {
		t.Errorf("after a refused Verify the domains table leaves its card")
	}
	shots(t, ctx, "configurator-verify-refused")
	// Remove asks first, saying what happens.
	do(t, ctx, "remove domain: ask",
		chromedp.Click(chromedp.CSS(`#step-domains td.act details.confirm > summary`)),
		chromedp.WaitVisible(chromedp.CSS(`#step-domains td.act .ask button`)),
	)
	if s := text(t, ctx, "#step-domains td.act .ask"); !strings.Contains(s, "Remove "+domain+"?") {
		t.Errorf("Remove domain's confirmation: %q", s)
	}
	shots(t, ctx, "configurator-remove-domain")
	checkA11y(t, ctx, "configurator, refused Verify")
	do(t, ctx, "reload the refusal", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(txtSel)))
	if s := text(t, ctx, ".wrap"); strings.Contains(s, reason) && eval[bool](t, ctx, `!!document.getElementById("verify-err")`) {
		t.Errorf("reload shows the refusal again")
	}

	// An invalid name: the error sits by its field, which has the focus;
	// the TXT column keeps its width.
	do(t, ctx, "invalid domain",
		chromedp.SendKeys(chromedp.ID("domain-name"), "co.uk"),
		chromedp.Click(chromedp.CSS(`form[action$="/admin/domains"] button`)),
		chromedp.WaitVisible(chromedp.ID("domain-name-err")),
	)
	onPage(t, ctx, "refused domain", "/sso/admin/")
	if f := focused(t, ctx); f != "domain-name" {
		t.Errorf("focus after a refused domain: %q", f)
	}
	if w := eval[float64](t, ctx, `document.querySelector("#step-domains table.dom th:nth-child(3)").getBoundingClientRect().width`); w < 200 {
		t.Errorf("TXT column is %.0f px wide after an invalid name", w)
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

	// 3. Group mapping, and who may change SSO: Jane's group.
	openStep(t, ctx, "groups")
	if s := text(t, ctx, "#step-groups"); !strings.Contains(s, "Only local admin accounts") {
		t.Errorf("default configurators: %q", s)
	}
	do(t, ctx, "group mapping",
		chromedp.WaitVisible(chromedp.ID("group-name")),
		chromedp.SendKeys(chromedp.ID("group-name"), groupName),
		chromedp.SendKeys(chromedp.ID("group-id"), groupID),
		chromedp.Click(chromedp.CSS(`form[action$="/admin/group"] button`)),
		chromedp.WaitVisible(chromedp.CSS("details.step.done#step-groups")),
	)
	openStep(t, ctx, "groups")
	do(t, ctx, "configurators group",
		chromedp.WaitVisible(chromedp.ID("cfg-name")),
		chromedp.SendKeys(chromedp.ID("cfg-name"), cfgName),
		chromedp.SendKeys(chromedp.ID("cfg-id"), cfgID),
		chromedp.Click(chromedp.CSS(`form[action$="/admin/config-group"] button`)),
		chromedp.WaitVisible(chromedp.CSS("#cfg-summary strong")),
	)
	if v := adminJSON(t, http.MethodGet, "/orgs/"+org, nil)["config_group"].(map[string]any); v["name"] != cfgName || v["id"] != cfgID {
		t.Errorf("config group: %v", v)
	}

	// Mid-way: three steps green, the SAML step open.
	openStep(t, ctx, "saml")
	do(t, ctx, "open SAML", chromedp.WaitVisible(chromedp.ID("idp-entity")))
	if n := eval[int](t, ctx, `Array.from(document.querySelectorAll("#step-saml button")).filter(function (b) { return b.textContent.trim() === "Save" }).length`); n != 0 {
		t.Errorf("step 4 has %d buttons just called Save", n)
	}
	shots(t, ctx, "configurator-midway")

	// 4. SAML: a plain-http SSO URL is refused next to its field, with the
	// input kept and the focus there; then the right one.
	do(t, ctx, "SAML with a bad SSO URL",
		chromedp.SetValue(chromedp.ID("idp-entity"), idp.EntityID()),
		chromedp.SetValue(chromedp.ID("idp-sso"), "http://acme.okta.example/app/sso/saml"),
		chromedp.SetValue(chromedp.ID("idp-cert"), idp.CertificatePEM()),
		chromedp.Click(chromedp.CSS(`#step-saml form[action$="/admin/saml"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("idp-sso-err")),
	)
	onPage(t, ctx, "refused SAML settings", "/sso/admin/")
	if s := text(t, ctx, "#idp-sso-err"); !strings.Contains(strings.ToLower(s), "https") {
		t.Errorf("SSO URL error: %q", s)
	}
	if v, _ := chromedp.Run(ctx, chromedp.Value(chromedp.ID("idp-entity"))); v != idp.EntityID() {
		t.Errorf("entity ID not kept after the error: %q", v)
	}
	if f := focused(t, ctx); f != "idp-sso" {
		t.Errorf("focus after the refused SSO URL: %q", f)
	}
	shots(t, ctx, "configurator-error")
	checkA11y(t, ctx, "configurator, refused SAML settings")
	do(t, ctx, "SAML",
		chromedp.SetValue(chromedp.ID("idp-sso"), idp.SSOURL()),
		chromedp.Click(chromedp.CSS(`#step-saml form[action$="/admin/saml"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("#step-saml[open] table.dom")), // the saved certificate is listed
	)
	if s := text(t, ctx, "#step-saml table.dom"); !strings.Contains(s, "Expires") {
		t.Errorf("certificate list: %q", s)
	}
	tick(t, ctx, "saml")

	// 5. SCIM: generate the token, shown once. A reload neither shows
	// nor rotates it.
	openStep(t, ctx, "scim")
	do(t, ctx, "SCIM token",
		chromedp.Click(chromedp.CSS(`form[action$="/admin/scim-token"] button`)),
		chromedp.WaitVisible(chromedp.ID("scim-token")),
	)
	onPage(t, ctx, "SCIM token", "/sso/admin/")
	shots(t, ctx, "configurator-scim")
	token := text(t, ctx, "#scim-token")
	scimURL := text(t, ctx, "#scim-url")
	tokenCreated := adminJSON(t, http.MethodGet, "/orgs/"+org, nil)["scim_token_created"]
	do(t, ctx, "reload after Generate token", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#step-scim")))
	if strings.Contains(text(t, ctx, "body"), token) {
		t.Errorf("the SCIM token is shown again after a reload")
	}
	if again := adminJSON(t, http.MethodGet, "/orgs/"+org, nil)["scim_token_created"]; again != tokenCreated {
		t.Errorf("a reload rotated the SCIM token (created %v, then %v)", tokenCreated, again)
	}
	// Rotate asks first, saying what happens.
	openStep(t, ctx, "scim")
	do(t, ctx, "rotate: ask",
		chromedp.Click(chromedp.CSS(`#rotate > summary`)),
		chromedp.WaitVisible(chromedp.CSS(`#rotate form[action$="/admin/scim-token"] button`)),
	)
	if s := text(t, ctx, "#rotate .ask"); !strings.Contains(s, "provisioning stops until you paste the new token") {
		t.Errorf("Rotate's confirmation: %q", s)
	}
	do(t, ctx, "rotate",
		chromedp.Click(chromedp.CSS(`#rotate form[action$="/admin/scim-token"] button`)),
		chromedp.WaitVisible(chromedp.ID("scim-token")),
	)
	if rotated := text(t, ctx, "#scim-token"); rotated == token || rotated == "" {
		t.Errorf("rotated token: %q", rotated)
	} else {
		token = rotated
	}
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
		chromedp.WaitVisible(chromedp.CSS(`#deactivate > summary`)),
	)
	onPage(t, ctx, "activate", "/sso/admin/")
	if s := text(t, ctx, ".status"); !strings.Contains(s, "Integration active") || !strings.Contains(s, "7 of 7") {
		t.Errorf("status after activation: %q", s)
	}
	shots(t, ctx, "configurator-done")
	checkA11y(t, ctx, "configurator, active")

	// The users page, same bar and layout. An invitation while SSO is
	// active says up front that the account cannot sign in with a
	// password; its link has a Copy button, is shown once, and the
	// invitee's page says so too.
	do(t, ctx, "users page",
		chromedp.Click(chromedp.CSS(`header.bar nav a[href$="/admin/users"]`)),
		chromedp.WaitVisible(chromedp.ID("inv-email")),
	)
	if s := text(t, ctx, ".flash.warn"); !strings.Contains(s, "cannot sign in with a password") {
		t.Errorf("users page while SSO is active: %q", s)
	}
	if n := eval[int](t, ctx, `Array.from(document.querySelectorAll("th")).filter(function (th) { return th.textContent.trim() === "" }).length`); n != 0 {
		t.Errorf("users page has %d empty header cells", n)
	}
	invitee := "contractor@" + domain
	do(t, ctx, "invite",
		chromedp.SendKeys(chromedp.ID("inv-email"), invitee),
		chromedp.Click(chromedp.CSS(`form[action$="/admin/users/invite"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`button[data-copy="invite-link"]`)),
	)
	onPage(t, ctx, "invite", "/sso/admin/users")
	inviteURL := text(t, ctx, "#invite-link")
	if s := text(t, ctx, ".secret"); !strings.Contains(s, "cannot sign in with its password") {
		t.Errorf("invitation while SSO is active: %q", s)
	}
	shots(t, ctx, "users")
	checkA11y(t, ctx, "users")
	if resp, err := http.Get(inviteURL); err != nil {
		t.Error(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), "will not sign you in") {
			t.Errorf("the invitee's page does not say SSO is active:\n%s", b)
		}
	}
	do(t, ctx, "reload after Invite", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("inv-email")))
	if strings.Contains(text(t, ctx, "body"), inviteURL) {
		t.Errorf("the invitation link is shown again after a reload")
	}
	rm := `details.confirm:has(form[action$="/remove"])`
	do(t, ctx, "remove: ask",
		chromedp.Click(chromedp.CSS(rm+" > summary")),
		chromedp.WaitVisible(chromedp.CSS(rm+" .ask button")),
	)
	if s := text(t, ctx, rm+" .ask"); !strings.Contains(s, invitee) || !strings.Contains(s, "cannot be undone") {
		t.Errorf("Remove's confirmation: %q", s)
	}
	do(t, ctx, "remove",
		chromedp.Click(chromedp.CSS(rm+" .ask button")),
	)
	waitFor(t, ctx, "removed", `document.body.innerText.includes("The user was removed")`)
	onPage(t, ctx, "remove", "/sso/admin/users")
	if strings.Contains(text(t, ctx, "table.users"), invitee) {
		t.Errorf("removed user still listed")
	}

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

	do(t, ctx, "sign out",
		chromedp.Click(chromedp.CSS(`form[action$="/logout"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`form[action$="/sso/login"]`)),
	)
	checkA11y(t, ctx, "sign-in page")

	// Joe, in a browser of his own, signs in with SSO but may not change
	// it: the configurator refuses him.
	joeCtx, cancelJoe := chromedp.NewContext(ctx, chromedp.WithNewBrowserContext())
	defer cancelJoe()
	ssoSignIn(t, joeCtx, gw, joe)
	do(t, joeCtx, "Joe opens the configurator",
		chromedp.Navigate(gw+"/sso/admin/"),
		chromedp.WaitVisible(chromedp.CSS("main h1")),
	)
	if s := text(t, joeCtx, "main"); !strings.Contains(s, "Access denied") {
		t.Errorf("Joe's configurator:\n%s", s)
	}
	checkA11y(t, joeCtx, "access denied")

	// Jane may: her Deactivate, after its confirmation, ends SSO at once,
	// her own SAML session included: the redirect after the post lands on
	// the sign-in page, where her domain no longer leads to SSO.
	ssoSignIn(t, ctx, gw, jane)
	if s := text(t, ctx, "body"); !strings.Contains(s, jane) || !strings.Contains(s, org) {
		t.Errorf("upstream page after SSO sign-in lacks the identity:\n%s", s)
	}
	do(t, ctx, "deactivate: ask",
		chromedp.Navigate(gw+"/sso/admin/"),
		chromedp.WaitVisible(chromedp.CSS(`#deactivate > summary`)),
		chromedp.Click(chromedp.CSS(`#deactivate > summary`)),
		chromedp.WaitVisible(chromedp.CSS(`#deactivate form[action$="/admin/deactivate"] button`)),
	)
	if s := text(t, ctx, "#deactivate .ask"); !strings.Contains(s, "signed out at once") {
		t.Errorf("Deactivate's confirmation: %q", s)
	}
	do(t, ctx, "deactivate",
		chromedp.Click(chromedp.CSS(`#deactivate form[action$="/admin/deactivate"] button`)),
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

// ssoSignIn signs email in with SSO: the gateway's sign-in page, then the
// IdP's, which the gateway's login hint has filled in already, then the
// application.
func ssoSignIn(t *testing.T, ctx context.Context, gw, email string) {
	t.Helper()
	do(t, ctx, "SSO sign-in: email",
		chromedp.Navigate(gw+"/sso/login?return=/app/home"),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), email),
		chromedp.Click(chromedp.CSS("form button[type=submit]")),
	)
	waitCtx, cancelWait := context.WithTimeout(ctx, 15*time.Second)
	defer cancelWait()
	if err := chromedp.Do(waitCtx, chromedp.WaitVisible(chromedp.ID("user"))); err != nil { // the IdP's login form
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		body, _ := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS("body")))
		t.Fatalf("IdP login form: %v at %s\n%s", err, loc, body)
	}
	if v, _ := chromedp.Run(ctx, chromedp.Value(chromedp.ID("user"))); v != email {
		t.Errorf("the IdP's form is not filled in from the login hint: %q", v)
	}
	do(t, ctx, "SSO sign-in: IdP",
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
}
