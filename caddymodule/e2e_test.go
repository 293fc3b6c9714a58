package caddymodule_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"golang.org/x/net/html"

	"github.com/ssogate/ssogate/examples/demo"
)

// The end-to-end tests run the whole demo installation in this process:
// Caddy with the sso app and the sso_gateway handler in front of
// reverse_proxy, the samlidp-based demo IdP, and the demo upstream. Caddy
// runs one config per process, so these tests do not run in parallel.
var env *demo.Env

func TestMain(m *testing.M) {
	// A fuzzing run (go test -run='^$' -fuzz=FuzzCaddyfile) needs none of
	// it, and every fuzz worker process would start it again.
	flag.Parse()
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "ssogate-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	env, err = demo.Start(context.Background(), demo.Config{
		Gateway:  freeAddr(),
		IdP:      freeAddr(),
		Upstream: freeAddr(),
		Admin:    freeAddr(),
		DataDir:  dir,
		LogLevel: envOr("SSOGATE_TEST_LOG", "ERROR"),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting demo:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	env.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects on its own, so each hop can be checked.
type browser struct {
	t      *testing.T
	client *http.Client
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, client: &http.Client{
		Jar:           jar,
		Timeout:       10 * time.Second,
		Transport:     resendOnDrop{http.DefaultTransport},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// resendOnDrop re-sends a request once when its connection ended before
// any response byte, as browsers do. The tests load configs all the time,
// and a server that Caddy is swapping out closes connections it has
// accepted but not yet answered (see loadConfig); such a request never
// reached the gateway's code, so sending it again changes nothing a test
// checks. Any answer, and any other error, is returned as it is.
type resendOnDrop struct{ base http.RoundTripper }

func (t resendOnDrop) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err == nil || !(errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
		return resp, err
	}
	again := req.Clone(req.Context())
	if req.Body != nil && req.Body != http.NoBody {
		if req.GetBody == nil {
			return resp, err
		}
		body, gerr := req.GetBody()
		if gerr != nil {
			return resp, err
		}
		again.Body = body
	}
	return t.base.RoundTrip(again)
}

type page struct {
	status   int
	location string
	body     string
	header   http.Header
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, location: resp.Header.Get("Location"), body: string(body), header: resp.Header}
}

func (b *browser) get(u string, hdr ...string) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return b.do(req)
}

func (b *browser) post(u string, form url.Values) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	return b.do(req)
}

// whoami asks the upstream, through the gateway, which identity headers it
// received.
func (b *browser) whoami(extra ...string) (int, map[string]string) {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, env.GatewayURL+"/whoami", nil)
	req.Header.Set("Accept", "application/json")
	for i := 0; i+1 < len(extra); i += 2 {
		req.Header.Set(extra[i], extra[i+1])
	}
	p := b.do(req)
	if p.status != http.StatusOK {
		return p.status, nil
	}
	var out struct {
		Headers map[string]string `json:"headers"`
	}
	if err := json.Unmarshal([]byte(p.body), &out); err != nil {
		b.t.Fatalf("upstream JSON: %v: %s", err, p.body)
	}
	return p.status, out.Headers
}

// startLogin posts the email to the gateway and returns the IdP URL it
// redirects to.
func (b *browser) startLogin(email, ret string) string {
	b.t.Helper()
	form := url.Values{"email": {email}}
	if ret != "" {
		form.Set("return", ret)
	}
	p := b.post(env.GatewayURL+"/sso/login", form)
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location, env.IdP.SSOURL()) {
		b.t.Fatalf("login for %s: want 303 to the IdP, got %d %q\n%s", email, p.status, p.location, p.body)
	}
	return p.location
}

// signIn drives the full browser flow through the IdP's login form and
// returns the gateway's answer to the ACS post.
func (b *browser) signIn(email, password, ret string) page {
	b.t.Helper()
	idpPage := b.get(b.startLogin(email, ret))
	if idpPage.status != http.StatusOK {
		b.t.Fatalf("IdP login page: %d\n%s", idpPage.status, idpPage.body)
	}
	action, fields := parseForm(b.t, idpPage.body)
	fields.Set("user", email)
	fields.Set("password", password)
	if action == "" {
		action = env.IdP.SSOURL()
	}
	resp := b.post(resolve(env.IdPURL, action), fields)
	if resp.status != http.StatusOK {
		b.t.Fatalf("IdP credentials: %d\n%s", resp.status, resp.body)
	}
	acs, samlForm := parseForm(b.t, resp.body)
	if samlForm.Get("SAMLResponse") == "" {
		b.t.Fatalf("IdP did not answer with a SAMLResponse form:\n%s", resp.body)
	}
	return b.post(acs, samlForm)
}

func resolve(base, ref string) string {
	bu, _ := url.Parse(base)
	ru, err := url.Parse(ref)
	if err != nil {
		return ref
	}
	return bu.ResolveReference(ru).String()
}

// parseForm returns the action and the named inputs of the first form.
func parseForm(t *testing.T, body string) (string, url.Values) {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var action string
	found := false
	vals := url.Values{}
	var walk func(*html.Node, bool)
	walk = func(n *html.Node, inForm bool) {
		if n.Type == html.ElementNode && n.Data == "form" && !found {
			found = true
			inForm = true
			action = attr(n, "action")
		}
		if inForm && n.Type == html.ElementNode && n.Data == "input" && attr(n, "name") != "" {
			vals.Set(attr(n, "name"), attr(n, "value"))
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, inForm)
		}
	}
	walk(doc, false)
	if !found {
		t.Fatalf("no form in page:\n%s", body)
	}
	return action, vals
}

func attr(n *html.Node, name string) string {
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val
		}
	}
	return ""
}

func signedIn(t *testing.T, b *browser) map[string]string {
	t.Helper()
	status, h := b.whoami()
	if status != http.StatusOK {
		t.Fatalf("signed-in request: status %d", status)
	}
	return h
}

func assertSignedOut(t *testing.T, b *browser) {
	t.Helper()
	if status, _ := b.whoami(); status != http.StatusUnauthorized {
		t.Fatalf("want 401 for an API request without a session, got %d", status)
	}
	p := b.get(env.GatewayURL + "/app/page?x=1")
	if p.status != http.StatusFound || p.location != "/sso/login?return="+url.QueryEscape("/app/page?x=1") {
		t.Fatalf("want redirect to the sign-in page, got %d %q", p.status, p.location)
	}
}

func TestAliceSignsInAndUpstreamSeesIdentity(t *testing.T) {
	b := newBrowser(t)
	assertSignedOut(t, b)
	p := b.signIn(demo.AliceEmail, demo.DefaultPassword, "/app/page?x=1")
	if p.status != http.StatusSeeOther || p.location != "/app/page?x=1" {
		t.Fatalf("ACS: want 303 to the page first asked for, got %d %q\n%s", p.status, p.location, p.body)
	}
	h := signedIn(t, b)
	want := map[string]string{
		"X-Sso-Email":       demo.AliceEmail,
		"X-Sso-User":        demo.AliceEmail,
		"X-Sso-Name":        "Alice Admin",
		"X-Sso-Org":         demo.OrgID,
		"X-Sso-Auth-Method": "saml",
	}
	for k, v := range want {
		if h[k] != v {
			t.Errorf("%s = %q, want %q (all: %v)", k, h[k], v, h)
		}
	}
	if h["X-Sso-User-Id"] == "" {
		t.Errorf("no X-Sso-User-Id: %v", h)
	}
	if !strings.Contains(","+h["X-Sso-Groups"]+",", ","+demo.AdminGroupName+",") {
		t.Errorf("X-Sso-Groups = %q, want it to list %s", h["X-Sso-Groups"], demo.AdminGroupName)
	}
}

func TestBobIsRefused(t *testing.T) {
	b := newBrowser(t)
	p := b.signIn(demo.BobEmail, demo.DefaultPassword, "")
	if p.status != http.StatusForbidden || !strings.Contains(p.body, "not allowed") {
		t.Fatalf("want the 403 page, got %d\n%s", p.status, p.body)
	}
	assertSignedOut(t, b)
	// A refused sign-in leaves no user behind (nor one shown to the
	// org's admins on the users page).
	out, err := env.Admin(context.Background(), http.MethodGet, env.AdminURL+"/sso/orgs/"+demo.OrgID+"/users", nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.ToLower(string(out)), demo.BobEmail) {
		t.Errorf("refused user was stored: %s", out)
	}
}

func TestSpoofedIdentityHeadersNeverReachUpstream(t *testing.T) {
	b := newBrowser(t)
	b.signIn(demo.AliceEmail, demo.DefaultPassword, "")
	status, h := b.whoami(
		"X-SSO-Email", "mallory@evil.example",
		"X-Sso-Groups", "everyone-is-admin",
		"x-sso-org", "other",
		"X-Forwarded-User", "mallory",
		"X-Forwarded-Email", "mallory@evil.example",
	)
	if status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	if h["X-Sso-Email"] != demo.AliceEmail || h["X-Sso-Org"] != demo.OrgID || strings.Contains(h["X-Sso-Groups"], "everyone") {
		t.Errorf("spoofed values reached the upstream: %v", h)
	}
	if _, ok := h["X-Forwarded-User"]; ok {
		t.Errorf("X-Forwarded-User reached the upstream: %v", h)
	}
	if _, ok := h["X-Forwarded-Email"]; ok {
		t.Errorf("X-Forwarded-Email reached the upstream: %v", h)
	}
}

func TestUnknownAndUnverifiedDomainsGetAMessage(t *testing.T) {
	ctx := context.Background()
	if _, err := env.Admin(ctx, http.MethodPost, env.AdminURL+"/sso/orgs/"+demo.OrgID+"/domains", map[string]any{"name": "pending-example.org"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = env.Admin(ctx, http.MethodDelete, env.AdminURL+"/sso/orgs/"+demo.OrgID+"/domains/pending-example.org", nil)
	})
	for _, email := range []string{"someone@unknown-domain.test", "carol@pending-example.org"} {
		b := newBrowser(t)
		p := b.post(env.GatewayURL+"/sso/login", url.Values{"email": {email}})
		if p.status != http.StatusOK || p.location != "" || !strings.Contains(p.body, "not set up for") {
			t.Errorf("%s: want the sign-in page with a message and no redirect, got %d %q\n%s", email, p.status, p.location, p.body)
		}
	}
	b := newBrowser(t)
	p := b.post(env.GatewayURL+"/sso/login", url.Values{"email": {"not-an-email"}})
	if p.status != http.StatusBadRequest || !strings.Contains(p.body, "full work email") {
		t.Errorf("malformed email: got %d\n%s", p.status, p.body)
	}
}

func TestLogoutEndsAccess(t *testing.T) {
	b := newBrowser(t)
	b.signIn(demo.AliceEmail, demo.DefaultPassword, "")
	signedIn(t, b)
	u, _ := url.Parse(env.GatewayURL)
	saved := b.client.Jar.Cookies(u)

	// A sign-out posted from another site is refused; the session stays.
	req, _ := http.NewRequest(http.MethodPost, env.GatewayURL+"/sso/logout", nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if p := b.do(req); p.status != http.StatusForbidden {
		t.Fatalf("cross-site logout: %d", p.status)
	}
	signedIn(t, b)

	p := b.post(env.GatewayURL+"/sso/logout", nil)
	if p.status != http.StatusOK || !strings.Contains(p.body, "signed out") {
		t.Fatalf("logout: %d\n%s", p.status, p.body)
	}
	assertSignedOut(t, b)

	// A copy of the cookie taken before logout is worthless: the session
	// record is gone.
	other := newBrowser(t)
	other.client.Jar.SetCookies(u, saved)
	assertSignedOut(t, other)

	// GET shows a confirmation page (logout_e2e_test.go); it never signs
	// out, which TestLogoutContract checks with a session.
	if p := b.get(env.GatewayURL + "/sso/logout"); p.status != http.StatusOK {
		t.Errorf("GET logout: want the confirmation page, got %d", p.status)
	}
}

func TestDeactivatingTheOrgEndsAccessOnTheNextRequest(t *testing.T) {
	ctx := context.Background()
	b := newBrowser(t)
	b.signIn(demo.AliceEmail, demo.DefaultPassword, "")
	signedIn(t, b)
	orgURL := env.AdminURL + "/sso/orgs/" + demo.OrgID
	if _, err := env.Admin(ctx, http.MethodPost, orgURL+"/deactivate", nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := env.Admin(ctx, http.MethodPost, orgURL+"/activate", nil); err != nil {
			t.Errorf("re-activating: %v", err)
		}
	})
	assertSignedOut(t, b)
	p := b.post(env.GatewayURL+"/sso/login", url.Values{"email": {demo.AliceEmail}})
	if p.status != http.StatusOK || !strings.Contains(p.body, "not set up for") {
		t.Errorf("login while inactive: got %d %q", p.status, p.location)
	}
}

func TestReturnURLStaysOnSite(t *testing.T) {
	for _, ret := range []string{"https://evil.example/x", "//evil.example/x", "/\\evil.example", "javascript:alert(1)", "http:/evil.example"} {
		b := newBrowser(t)
		lp := b.get(env.GatewayURL + "/sso/login?return=" + url.QueryEscape(ret))
		if strings.Contains(lp.body, "evil.example") || strings.Contains(lp.body, "javascript:") {
			t.Errorf("%q echoed in the login page", ret)
		}
		p := b.signIn(demo.AliceEmail, demo.DefaultPassword, ret)
		if p.status != http.StatusSeeOther || p.location != "/" {
			t.Errorf("return %q: want 303 to /, got %d %q", ret, p.status, p.location)
		}
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func TestLoginFormSizeIsCapped(t *testing.T) {
	b := newBrowser(t)
	p := b.post(env.GatewayURL+"/sso/login", url.Values{"email": {strings.Repeat("a", 20<<10) + "@example.com"}})
	if p.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized login form: %d\n%s", p.status, p.body)
	}
	assertSignedOut(t, b)
}

// loadConfig runs a config in place of the current one, the way a
// `caddy reload` does, and returns once the old config is out of the way.
// Caddy returns from a load once the old server has begun to shut down,
// and until it lets go of the shared listening socket it may still accept
// a connection, read a request on it and drop it unanswered; so does it
// with a request on one of its idle keep-alive connections (see
// TestReloadUnderLoadFailsNoRequest). Wait for that, and make the tests'
// shared transport forget connections to the old servers (the admin
// endpoint is restarted by every load too).
func loadConfig(t *testing.T, raw []byte) {
	t.Helper()
	if err := caddy.Load(raw, true); err != nil {
		t.Fatalf("loading config: %v", err)
	}
	gateway := strings.TrimPrefix(env.GatewayURL, "http://")
	for deadline := time.Now().Add(5 * time.Second); caddy.ListenerUsage("tcp", gateway) > 1; {
		if time.Now().After(deadline) {
			t.Fatalf("the old server still listens on %s", gateway)
		}
		time.Sleep(time.Millisecond)
	}
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	waitAdmin(t)
}
