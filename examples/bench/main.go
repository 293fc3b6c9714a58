// Command bench is the helper of examples/bench/run.sh, the side-by-side
// throughput test of plain Caddy reverse_proxy and the same with
// sso_gateway in front. It has three subcommands:
//
//	bench upstream -listen 127.0.0.1:9000
//	    a deliberately tiny upstream (a fixed 13-byte answer), so that the
//	    comparison measures the proxies, not the application; at
//	    /identity-headers it shows the identity headers it was sent;
//	bench login -gateway http://127.0.0.1:8080 -email alice@example.com -password …
//	    signs in through the gateway and the demo IdP the way a browser does
//	    (login form, IdP login form, HTTP-POST to the ACS) and prints the
//	    session cookie as name=value, ready for a Cookie header;
//	bench scim -admin http://127.0.0.1:2019 -org example -rate 20
//	    a background load shaped like an IdP syncing the org's directory
//	    (see runSCIM), with the token that `bench scim-token` printed.
package main

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
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/html"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "upstream":
		err = runUpstream(os.Args[2:])
	case "login":
		err = runLogin(os.Args[2:])
	case "scim":
		err = runSCIM(os.Args[2:])
	case "scim-token":
		err = runSCIMToken(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: bench upstream -listen addr | bench login -gateway url -email e -password p | bench scim -admin url -org id -rate n | bench scim-token -admin url -org id")
	os.Exit(2)
}

func runUpstream(args []string) error {
	fs := flag.NewFlagSet("upstream", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:9000", "listen address")
	_ = fs.Parse(args)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	body := []byte("hello, world\n")
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/identity-headers" {
				echoIdentity(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write(body)
		}),
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// echoIdentity answers with the identity headers the request carries (as
// the gateway sets them: X-SSO-*, and oauth2-proxy's names), as the JSON
// of a Caddy headers handler's "set", so that run.sh can have plain
// reverse_proxy send the very same headers.
func echoIdentity(w http.ResponseWriter, r *http.Request) {
	out := map[string][]string{}
	for name, vals := range r.Header {
		switch {
		case strings.HasPrefix(name, "X-Sso-"), strings.HasPrefix(name, "X-Auth-Request-"),
			name == "X-Forwarded-User", name == "X-Forwarded-Email", name == "X-Forwarded-Groups",
			name == "X-Forwarded-Preferred-Username":
			out[name] = vals
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func runLogin(args []string) error {
	fs := flag.NewFlagSet("login", flag.ExitOnError)
	gateway := fs.String("gateway", "http://127.0.0.1:8080", "gateway base URL")
	email := fs.String("email", "alice@example.com", "user to sign in")
	password := fs.String("password", "demo-password", "the user's password at the IdP")
	_ = fs.Parse(args)
	cookie, err := login(*gateway, *email, *password)
	if err != nil {
		return err
	}
	fmt.Println(cookie)
	return nil
}

// login runs the SP-initiated flow with a cookie jar and no automatic
// redirects, checking each hop, and returns the session cookie.
func login(gateway, email, password string) (string, error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return "", err
	}
	c := &http.Client{
		Jar:           jar,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	// 1. The gateway's sign-in form sends the user to their org's IdP.
	resp, body, err := send(c, http.MethodPost, gateway+"/sso/login", url.Values{"email": {email}})
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusSeeOther {
		return "", fmt.Errorf("gateway login: want 303 to the IdP, got %s: %s", resp.Status, body)
	}
	idpURL := resp.Header.Get("Location")

	// 2. The IdP's login form, filled in.
	resp, body, err = send(c, http.MethodGet, idpURL, nil)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("IdP login page: %s", resp.Status)
	}
	action, fields, err := firstForm(body)
	if err != nil {
		return "", fmt.Errorf("IdP login page: %w", err)
	}
	fields.Set("user", email)
	fields.Set("password", password)
	resp, body, err = send(c, http.MethodPost, resolve(idpURL, action), fields)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("IdP credentials: %s", resp.Status)
	}

	// 3. The IdP's auto-submitting form posts the SAML response to the ACS.
	acs, samlForm, err := firstForm(body)
	if err != nil || samlForm.Get("SAMLResponse") == "" {
		return "", fmt.Errorf("IdP did not answer with a SAMLResponse form (%v)", err)
	}
	resp, body, err = send(c, http.MethodPost, resolve(idpURL, acs), samlForm)
	if err != nil {
		return "", err
	}
	if resp.StatusCode/100 != 3 {
		return "", fmt.Errorf("ACS: want a redirect into the app, got %s: %s", resp.Status, body)
	}
	for _, ck := range resp.Cookies() {
		if strings.HasSuffix(ck.Name, "ssogate_session") && ck.Value != "" {
			return ck.Name + "=" + ck.Value, nil
		}
	}
	return "", errors.New("ACS set no session cookie")
}

func send(c *http.Client, method, u string, form url.Values) (*http.Response, string, error) {
	var rd io.Reader
	if form != nil {
		rd = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Accept", "text/html")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, string(b), err
}

func resolve(base, ref string) string {
	bu, err := url.Parse(base)
	if err != nil {
		return ref
	}
	ru, err := url.Parse(ref)
	if err != nil {
		return ref
	}
	return bu.ResolveReference(ru).String()
}

// firstForm returns the action and the named inputs of the page's first
// form.
func firstForm(page string) (string, url.Values, error) {
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		return "", nil, err
	}
	var form *html.Node
	var find func(*html.Node)
	find = func(n *html.Node) {
		if form != nil {
			return
		}
		if n.Type == html.ElementNode && n.Data == "form" {
			form = n
			return
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			find(c)
		}
	}
	find(doc)
	if form == nil {
		return "", nil, errors.New("no form in the page")
	}
	vals := url.Values{}
	var inputs func(*html.Node)
	inputs = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "input" && attr(n, "name") != "" {
			vals.Set(attr(n, "name"), attr(n, "value"))
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			inputs(c)
		}
	}
	inputs(form)
	return attr(form, "action"), vals, nil
}

func attr(n *html.Node, name string) string {
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val
		}
	}
	return ""
}
