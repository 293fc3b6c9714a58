package caddymodule_test

import (
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/ssogate/ssogate/examples/demo"
)

// TestLogoutContract is the sign-out contract applications rely on: a
// link to GET /sso/logout?rd=… shows a page that confirms with a POST and
// signs no one out by itself; the POST ends the session and returns to rd
// when rd is on this site, and ignores any other rd (no open redirect).
func TestLogoutContract(t *testing.T) {
	b := newBrowser(t)
	b.signIn(demo.AliceEmail, demo.DefaultPassword, "")
	signedIn(t, b)

	p := b.get(env.GatewayURL + "/sso/logout?rd=" + url.QueryEscape("/reports?week=3"))
	if p.status != http.StatusOK || !strings.Contains(p.body, `<form method="post" action="/sso/logout">`) ||
		!strings.Contains(html.UnescapeString(p.body), `name="rd" value="/reports?week=3"`) {
		t.Fatalf("confirmation page: %d\n%s", p.status, p.body)
	}
	if !strings.Contains(p.body, demo.AliceEmail) {
		t.Errorf("the page does not say who is signed in:\n%s", p.body)
	}
	signedIn(t, b) // a GET never signs out

	for _, rd := range []string{"https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)",
		strings.Replace(env.GatewayURL, "127.0.0.1", "127.0.0.1.evil.example", 1) + "/x"} {
		p := b.get(env.GatewayURL + "/sso/logout?rd=" + url.QueryEscape(rd))
		if strings.Contains(p.body, `name="rd"`) {
			t.Errorf("rd %q carried into the form:\n%s", rd, p.body)
		}
	}

	// POST with a same-origin absolute rd: back to its path.
	p = b.post(env.GatewayURL+"/sso/logout", url.Values{"rd": {env.GatewayURL + "/after?x=1"}})
	if p.status != http.StatusSeeOther || p.location != "/after?x=1" {
		t.Fatalf("logout with rd: %d %q", p.status, p.location)
	}
	assertSignedOut(t, b)

	// Another site's rd is ignored: the signed-out page, no redirect.
	b = newBrowser(t)
	b.signIn(demo.AliceEmail, demo.DefaultPassword, "")
	p = b.post(env.GatewayURL+"/sso/logout", url.Values{"rd": {"https://evil.example/"}})
	if p.status != http.StatusOK || p.location != "" || !strings.Contains(p.body, "signed out") {
		t.Fatalf("logout with foreign rd: %d %q", p.status, p.location)
	}
	assertSignedOut(t, b)

	// Without a session, the page says so and offers the way on.
	p = b.get(env.GatewayURL + "/sso/logout?rd=/home")
	if p.status != http.StatusOK || strings.Contains(p.body, "<form") || !strings.Contains(p.body, `href="/home"`) {
		t.Errorf("logout page without a session: %d\n%s", p.status, p.body)
	}
	if p := b.do(mustRequest(t, http.MethodPut, env.GatewayURL+"/sso/logout")); p.status != http.StatusMethodNotAllowed {
		t.Errorf("PUT logout: %d", p.status)
	}
}

func mustRequest(t *testing.T, method, u string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}
