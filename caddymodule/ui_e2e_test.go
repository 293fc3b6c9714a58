package caddymodule_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/ssogate/ssogate/examples/demo"
)

// TestLoginHint: the address typed on the sign-in page goes to the IdP as
// login_hint, appended after the AuthnRequest's own parameters.
func TestLoginHint(t *testing.T) {
	b := newBrowser(t)
	p := b.post(env.GatewayURL+"/sso/login", url.Values{"email": {demo.AliceEmail}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("login: %d\n%s", p.status, p.body)
	}
	u, err := url.Parse(p.location)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if q.Get("SAMLRequest") == "" || q.Get("login_hint") != demo.AliceEmail {
		t.Errorf("IdP redirect: %s", p.location)
	}
	if !strings.HasSuffix(u.RawQuery, "&login_hint="+url.QueryEscape(demo.AliceEmail)) {
		t.Errorf("login_hint is not appended after the signed parameters: %s", u.RawQuery)
	}
}

// TestTooLargeTitle: a form refused for its size says so in its title,
// which, like every message page's, names the product, not "Sign in".
func TestTooLargeTitle(t *testing.T) {
	b := newBrowser(t)
	p := b.post(env.GatewayURL+"/sso/login", url.Values{"email": {strings.Repeat("a", 64<<10) + "@example.com"}})
	if p.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("huge login form: %d", p.status)
	}
	if !strings.Contains(p.body, "<title>Request too large · ssogate</title>") {
		t.Errorf("413 page:\n%s", p.body)
	}
}
