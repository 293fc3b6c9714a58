package caddymodule_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ssogate/ssogate/examples/demoidp"
)

// TestBrowserSignInAttempts drives the sign-in attempts page in headless
// Chromium as an org admin would before activating: Test sign-in through
// the organization's IdP (admitted, then refused with its fix once the
// admin group is one the user is not in), the reference code search, and
// the IdP-initiated switch.
func TestBrowserSignInAttempts(t *testing.T) {
	ctx := newChromium(t)
	org := uniqueOrg("attbr")
	domain := org + ".test"
	owner, jane := "it-admin@"+domain, "jane@"+domain
	const groupName = "ssogate-admins"

	idpSrv := httptest.NewUnstartedServer(nil)
	idp, err := demoidp.New(demoidp.Config{BaseURL: "http://" + idpSrv.Listener.Addr().String(), Users: []demoidp.User{
		{Email: jane, Password: strongPassword, DisplayName: "Jane Doe", Groups: []string{groupName}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	idpSrv.Config.Handler = idp.Handler()
	idpSrv.Start()
	t.Cleanup(idpSrv.Close)

	created := adminJSON(t, http.MethodPost, "/orgs", map[string]any{"id": org, "name": "Attempts Corp", "owner_email": owner})
	t.Cleanup(func() { _, _ = env.Admin(context.Background(), http.MethodDelete, env.AdminURL+"/sso/orgs/"+org, nil) })
	base := "/orgs/" + org
	adminJSON(t, http.MethodPost, base+"/domains", map[string]any{"name": domain})
	adminJSON(t, http.MethodPost, base+"/domains/"+domain+"/verify", map[string]any{"force": true})
	adminJSON(t, http.MethodPut, base+"/admin-group", map[string]any{"name": groupName, "id": "00g-attbr-admins"})
	adminJSON(t, http.MethodPut, base+"/idp", map[string]any{"entity_id": idp.EntityID(), "sso_url": idp.SSOURL(), "certificates": []string{idp.CertificatePEM()}})
	gw := env.GatewayURL
	md, err := http.Get(gw + "/sso/saml/" + org + "/metadata")
	if err != nil {
		t.Fatal(err)
	}
	mdXML, _ := io.ReadAll(md.Body)
	md.Body.Close()
	if err := idp.RegisterServiceProvider(org, mdXML); err != nil {
		t.Fatal(err)
	}

	do(t, ctx, "set password",
		chromedp.Navigate(created["owner_invite_url"].(string)),
		chromedp.WaitVisible(chromedp.CSS("input[name=password]")),
		chromedp.SendKeys(chromedp.CSS("input[name=password]"), strongPassword),
		chromedp.SendKeys(chromedp.CSS("input[name=confirm]"), strongPassword),
		chromedp.Click(chromedp.CSS("form button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS(".notice")),
	)
	do(t, ctx, "password sign-in",
		chromedp.Navigate(gw+"/sso/backup?org="+org+"&return=/sso/admin/"),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), owner),
		chromedp.SendKeys(chromedp.ID("password"), strongPassword),
		chromedp.Click(chromedp.CSS("form button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS(`a[href$="/admin/signin-attempts"]`)),
		chromedp.Click(chromedp.CSS(`a[href$="/admin/signin-attempts"]`)),
		chromedp.WaitVisible(chromedp.ID("test-signin")),
	)
	if s := text(t, ctx, "#attempts"); !strings.Contains(s, "No sign-in attempts yet") {
		t.Errorf("attempts before any sign-in: %q", s)
	}

	// testSignIn presses Test sign-in, signs in at the IdP if it asks, and
	// returns the reference code of the result it lands on.
	testSignIn := func(stage string) string {
		t.Helper()
		before, _ := chromedp.Run(ctx, chromedp.Location())
		do(t, ctx, stage, chromedp.Click(chromedp.ID("test-signin")))
		deadline := time.Now().Add(20 * time.Second)
		for {
			loc, err := chromedp.Run(ctx, chromedp.Location())
			if err == nil && loc != before && strings.HasPrefix(loc, gw+"/sso/admin/signin-attempts?ref=") {
				u, _ := url.Parse(loc)
				do(t, ctx, stage+": result", chromedp.WaitVisible(chromedp.CSS(`tr[data-ref="`+u.Query().Get("ref")+`"]`)))
				return u.Query().Get("ref")
			}
			if form, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!document.getElementById("user")`)); form {
				do(t, ctx, stage+": IdP",
					chromedp.SendKeys(chromedp.ID("user"), jane),
					chromedp.SendKeys(chromedp.CSS("input[name=password]"), strongPassword),
					chromedp.Click(chromedp.CSS("form button[type=submit]")),
					chromedp.WaitNotPresent(chromedp.ID("user")),
				)
				continue
			}
			if time.Now().After(deadline) {
				body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
				t.Fatalf("%s: did not come back to the attempts page: at %q\n%s", stage, loc, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	ok := testSignIn("test sign-in")
	if s := text(t, ctx, `tr[data-ref="`+ok+`"]`); !strings.Contains(s, "signed in") || !strings.Contains(s, "test") ||
		!strings.Contains(s, jane) || !strings.Contains(s, "Group values: 1") || !strings.Contains(s, "rsa-sha256") {
		t.Errorf("the test's row: %q", s)
	}
	screenshot(t, ctx, "signin-attempts.png")
	if v := adminJSON(t, http.MethodGet, base, nil); v["state"] != "inactive" {
		t.Errorf("a Test sign-in changed the org's state to %v", v["state"])
	}
	if s := text(t, ctx, "header.bar .who"); !strings.Contains(s, owner) {
		t.Errorf("after the test the admin is no longer signed in as %s: %q", owner, s)
	}

	// With an admin group Jane is not in, the test is refused, with the fix.
	adminJSON(t, http.MethodPut, base+"/admin-group", map[string]any{"name": "other-admins", "id": "00g-attbr-other"})
	bad := testSignIn("refused test sign-in")
	if s := text(t, ctx, `tr[data-ref="`+bad+`"]`); !strings.Contains(s, "refused") || !strings.Contains(s, "not a member of the organization's admin group") ||
		!strings.Contains(s, "Fix: Add the user to the admin group") {
		t.Errorf("the refused test's row: %q", s)
	}

	// The reference code finds its attempt, typed in lower case.
	do(t, ctx, "find by reference code",
		chromedp.Navigate(gw+"/sso/admin/signin-attempts"),
		chromedp.WaitVisible(chromedp.ID("ref")),
		chromedp.SendKeys(chromedp.ID("ref"), strings.ToLower(ok)),
		chromedp.Click(chromedp.CSS(`form[action$="/admin/signin-attempts"] button`)),
		chromedp.WaitNotPresent(chromedp.CSS(`tr[data-ref="`+bad+`"]`)),
	)
	if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#attempts tbody tr[data-ref]").length`)); n != 1 {
		t.Errorf("search by code shows %d rows, want 1", n)
	}

	// IdP-initiated sign-in: off by default, its risk stated, switched on.
	if s := text(t, ctx, ".wrap"); !strings.Contains(s, "Risk:") || !strings.Contains(s, "login CSRF") {
		t.Errorf("the IdP-initiated switch does not state its risk")
	}
	do(t, ctx, "turn on IdP-initiated sign-in",
		chromedp.Click(chromedp.CSS(`form[action$="/admin/signin-attempts/idp-initiated"] button`)),
		chromedp.WaitVisible(chromedp.CSS(".flash.ok")),
	)
	if v := adminJSON(t, http.MethodGet, base, nil); v["allow_idp_initiated"] != true {
		t.Errorf("after Turn on: allow_idp_initiated = %v", v["allow_idp_initiated"])
	}
}
