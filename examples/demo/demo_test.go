package demo

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"golang.org/x/net/html"

	_ "github.com/ssogate/ssogate/caddymodule"
)

// TestDemoSurvivesARestart starts the demo twice on one data directory,
// as `ssogate demo --data DIR` run twice does, and signs Alice in through
// the IdP's login form each time. The second sign-in used to be refused:
// the demo IdP invented new user IDs on every start, and the gateway
// rightly refuses an identifier that differs from the one on file.
func TestDemoSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{
		Gateway:  freeAddr(t),
		IdP:      freeAddr(t),
		Upstream: freeAddr(t),
		Admin:    freeAddr(t),
		DataDir:  dir,
		LogLevel: "ERROR",
	}
	for run := 1; run <= 2; run++ {
		env, err := Start(context.Background(), cfg)
		if err != nil {
			t.Fatalf("run %d: starting the demo: %v", run, err)
		}
		body := signIn(t, env, AliceEmail, DefaultPassword)
		env.Stop()
		if !strings.Contains(body, AliceEmail) {
			t.Fatalf("run %d: Alice is not signed in; the app showed:\n%s", run, body)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// signIn drives the browser flow (email at the gateway, credentials at the
// IdP's form, SAML response posted to the ACS, redirect to the app) with a
// cookie jar, and returns the app's page.
func signIn(t *testing.T, env *Env, email, password string) string {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	send := func(method, u string, form url.Values) string {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequest(method, u, body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept", "text/html")
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, u, err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: %s\n%s", method, u, resp.Status, out)
		}
		return string(out)
	}
	// The gateway's sign-in page, then its form with the email; the
	// client follows the redirect to the IdP's login form.
	page := send(http.MethodGet, env.GatewayURL+"/sso/login", nil)
	action, fields := formOf(t, env.GatewayURL+"/sso/login", page)
	fields.Set("email", email)
	page = send(http.MethodPost, action, fields)
	action, fields = formOf(t, env.IdP.SSOURL(), page)
	fields.Set("user", email)
	fields.Set("password", password)
	page = send(http.MethodPost, action, fields)
	// The IdP's auto-submitting form carries the SAML response to the ACS,
	// which redirects to the app.
	action, fields = formOf(t, env.IdPURL, page)
	if fields.Get("SAMLResponse") == "" {
		t.Fatalf("the IdP answered no SAML response:\n%s", page)
	}
	return send(http.MethodPost, action, fields)
}

// formOf returns the first form's absolute action and its input values.
func formOf(t *testing.T, base, page string) (string, url.Values) {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	var action string
	found := false
	fields := url.Values{}
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "form":
				if found {
					return
				}
				found = true
				action = attr(n, "action")
			case "input":
				if name := attr(n, "name"); name != "" && found {
					fields.Set(name, attr(n, "value"))
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if !found {
		t.Fatalf("no form on the page:\n%s", page)
	}
	bu, _ := url.Parse(base)
	au, err := url.Parse(action)
	if err != nil {
		t.Fatalf("form action %q: %v", action, err)
	}
	return bu.ResolveReference(au).String(), fields
}

func attr(n *html.Node, name string) string {
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val
		}
	}
	return ""
}
