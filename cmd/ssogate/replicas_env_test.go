//go:build unix

package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/ssogate/ssogate/examples/demo"
	"github.com/ssogate/ssogate/examples/demoidp"
	"github.com/ssogate/ssogate/examples/upstream"
)

// The replica tests run two ssogate processes, A and B, from this test
// binary (see runAsSSOGate) on one PostgreSQL schema, with one session key
// and one base_url: a load balancer in this process, which sends each
// request to the replica a test names or, when it names none, to each in
// turn. The demo IdP and the demo upstream run in this process too.

// replicaHeader, on a request to the load balancer, names the replica that
// must serve it ("a" or "b"); the balancer removes it.
const replicaHeader = "X-Test-Replica"

// revocationBound is the requirement: a revocation taken by one
// replica takes effect on every other one within a second.
const revocationBound = time.Second

type replicaEnv struct {
	t       *testing.T
	baseURL string // the load balancer: what browsers and the IdP use
	idp     *demoidp.IdP
	idpURL  string
	a, b    *replica
	scim    string // the demo org's SCIM bearer token
}

// replica is one ssogate process, restartable on the same addresses.
type replica struct {
	name                 string
	dir                  string
	gatewayURL, adminURL string // direct, bypassing the load balancer
	caddyfile            string
	env                  []string
	// secrets must appear in no log line: the DSN (with a password) and
	// the session key.
	secrets []string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	exitErr error
	logs    []string
}

// startReplicas starts the IdP, the upstream, the load balancer and the
// two replicas on schema of the server dsn names, and sets up the demo
// organization through A's admin API.
func startReplicas(t *testing.T, dsn, schema string) *replicaEnv {
	t.Helper()
	dsn, password := withDecoyPassword(t, dsn)
	dir := t.TempDir()
	e := &replicaEnv{t: t}

	// Backends are filled in once the replicas' addresses are known; the
	// balancer must exist first, since its URL is the base_url.
	var backends [2]atomic.Pointer[url.URL]
	var turn atomic.Uint64
	lb := httptest.NewUnstartedServer(&httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			i := int(turn.Add(1) % 2)
			switch pr.In.Header.Get(replicaHeader) {
			case "a":
				i = 0
			case "b":
				i = 1
			}
			pr.Out.Header.Del(replicaHeader)
			pr.SetURL(backends[i].Load())
			// The replicas see the site's host, as behind a real
			// balancer.
			pr.Out.Host = pr.In.Host
		},
		// A replica that is down is a 502, never a silent retry on the
		// other one: the tests count on knowing who served what.
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			http.Error(w, "load balancer: "+err.Error(), http.StatusBadGateway)
		},
	})
	lb.Start()
	t.Cleanup(lb.Close)
	e.baseURL = lb.URL

	idpAddr := freeLoopbackAddr(t)
	e.idpURL = "http://" + idpAddr
	idp, err := demoidp.New(demoidp.Config{
		BaseURL: e.idpURL,
		Users: []demoidp.User{
			{Email: demo.AliceEmail, Password: demo.DefaultPassword, DisplayName: "Alice Admin", GivenName: "Alice", FamilyName: "Admin", Groups: demo.AliceGroups()},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.idp = idp
	serveHTTP(t, idpAddr, idp.Handler())
	upstreamAddr := freeLoopbackAddr(t)
	serveHTTP(t, upstreamAddr, upstream.Handler(nil))

	key := make([]byte, 48)
	_, _ = rand.Read(key)
	sessionKey := base64.StdEncoding.EncodeToString(key)
	// One address for every replica (ownLoopbackHost), as for the
	// servers behind one load balancer.
	host := ownLoopbackHost(t)
	newReplica := func(name string) *replica {
		gw, admin := freeAddrOn(t, host), freeAddrOn(t, host)
		_, port, _ := net.SplitHostPort(gw)
		r := &replica{
			name:       name,
			dir:        filepath.Join(dir, name),
			gatewayURL: "http://" + gw,
			adminURL:   "http://" + admin,
		}
		home := filepath.Join(r.dir, "home")
		if err := os.MkdirAll(home, 0o700); err != nil {
			t.Fatal(err)
		}
		// The DSN reaches the process through its environment, as the
		// README tells operators to pass it, never through the file.
		cfg := fmt.Sprintf(`{
	admin %[1]s {
		origins %[1]s
	}
	persist_config off
	grace_period 1s
	sso {
		base_url %s
		session_key %s
		storage postgres {
			dsn {env.SSOGATE_DATABASE_URL}
			schema %s
		}
	}
}

http://:%s {
	bind %s
	sso_gateway
	reverse_proxy %s
}
`, admin, e.baseURL, sessionKey, schema, port, host, upstreamAddr)
		r.caddyfile = filepath.Join(r.dir, "Caddyfile")
		if err := os.WriteFile(r.caddyfile, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		r.secrets = []string{dsn, password, sessionKey}
		r.env = append(os.Environ(), runAsSSOGate+"=1", "SSOGATE_DATABASE_URL="+dsn,
			"HOME="+home, "XDG_DATA_HOME="+home, "XDG_CONFIG_HOME="+home)
		t.Cleanup(r.killIfRunning)
		return r
	}
	e.a, e.b = newReplica("a"), newReplica("b")
	a, _ := url.Parse(e.a.gatewayURL)
	b, _ := url.Parse(e.b.gatewayURL)
	backends[0].Store(a)
	backends[1].Store(b)

	// Both at once, as an orchestrator starts replicas: the schema's
	// migration must not race.
	errs := make(chan error, 2)
	go func() { errs <- e.a.start() }()
	go func() { errs <- e.b.start() }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tok, err := demo.SetUpOrg(ctx, e.a.adminURL, e.baseURL, idp, demo.DefaultPassword)
	if err != nil {
		t.Fatalf("setting up the organization through A: %v", err)
	}
	e.scim = tok
	return e
}

// withDecoyPassword adds a password to a DSN that has none, so that the
// logs can be searched for it: the test servers trust loopback clients and
// ignore it. A DSN with a password of its own is returned as it is.
func withDecoyPassword(t *testing.T, dsn string) (string, string) {
	t.Helper()
	const decoy = "decoy-replica-secret"
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("the test database's DSN does not parse: %v", err)
		}
		if p, ok := u.User.Password(); ok && p != "" {
			return dsn, p
		}
		q := u.Query()
		if p := q.Get("password"); p != "" {
			return dsn, p
		}
		q.Set("password", decoy)
		u.RawQuery = q.Encode()
		return u.String(), decoy
	}
	if m := regexp.MustCompile(`(?:^|\s)password=(\S+)`).FindStringSubmatch(dsn); m != nil {
		return dsn, m[1]
	}
	return dsn + " password=" + decoy, decoy
}

func serveHTTP(t *testing.T, addr string, h http.Handler) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
}

// start runs the process and waits until its whole config has started.
// It returns an error rather than failing the test, so that both replicas
// can start at once.
func (r *replica) start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	logPath := filepath.Join(r.dir, fmt.Sprintf("run-%d.log", len(r.logs)))
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	r.logs = append(r.logs, logPath)
	cmd := exec.Command(os.Args[0], "run", "--config", r.caddyfile, "--adapter", "caddyfile")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = r.env
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("starting replica %s: %w", r.name, err)
	}
	exited := make(chan struct{})
	go func() {
		r.exitErr = cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	r.cmd, r.exited = cmd, exited

	deadline := time.Now().Add(time.Minute)
	for {
		select {
		case <-exited:
			return fmt.Errorf("replica %s exited while starting: %v\n%s", r.name, r.exitErr, readFile(logPath))
		default:
		}
		// The admin API's /sso/ routes answer 503 until the whole config
		// has started, which the run command logs.
		if strings.Contains(readFile(logPath), `"msg":"serving initial configuration"`) {
			if err := getOK(r.gatewayURL + "/sso/login"); err != nil {
				return fmt.Errorf("replica %s started but does not answer: %v", r.name, err)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("replica %s did not come up\n%s", r.name, readFile(logPath))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill ends the process with SIGKILL: no shutdown, no flush, no Close.
func (r *replica) kill(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Errorf("SIGKILL replica %s: %v", r.name, err)
	}
	<-r.exited
}

// stop asks the process to stop through its admin API and requires a
// clean exit.
func (r *replica) stop(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	resp, err := http.Post(r.adminURL+"/stop", "application/json", nil)
	if err == nil {
		resp.Body.Close()
	}
	select {
	case <-r.exited:
		if r.exitErr != nil {
			t.Errorf("replica %s exited with %v after /stop", r.name, r.exitErr)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("replica %s did not stop", r.name)
		_ = r.cmd.Process.Signal(syscall.SIGKILL)
		<-r.exited
	}
}

func (r *replica) killIfRunning() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	select {
	case <-r.exited:
	default:
		_ = r.cmd.Process.Signal(syscall.SIGKILL)
		<-r.exited
	}
}

// checkLogs fails the test for a panic in any run of the replica and, when
// quiet, for any line logged at error level or above (an outage of the
// database is expected to be logged).
func (r *replica) checkLogs(t *testing.T, quiet bool) {
	t.Helper()
	r.mu.Lock()
	logs := append([]string(nil), r.logs...)
	r.mu.Unlock()
	for i, path := range logs {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			for _, secret := range r.secrets {
				if strings.Contains(line, secret) {
					t.Errorf("replica %s run %d logged a secret: %s", r.name, i, line)
				}
			}
			var entry struct {
				Level string `json:"level"`
				Msg   string `json:"msg"`
			}
			if json.Unmarshal([]byte(line), &entry) != nil {
				if strings.Contains(line, "panic") || strings.HasPrefix(line, "goroutine ") {
					t.Errorf("replica %s run %d: %s", r.name, i, line)
				}
				continue
			}
			if strings.Contains(entry.Msg, "panic") || entry.Level == "panic" || entry.Level == "fatal" ||
				(quiet && entry.Level == "error") {
				t.Errorf("replica %s run %d logged: %s", r.name, i, line)
			}
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
}

// metric sums the series of one metric on the replica's admin /metrics
// whose labels include the given ones.
func (r *replica) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(r.adminURL + "/metrics")
	if err != nil {
		t.Fatalf("replica %s /metrics: %v", r.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("replica %s /metrics: %s", r.name, resp.Status)
	}
	labelRE := regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
next:
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		head, val, ok := strings.Cut(line, " ")
		if i := strings.LastIndexByte(line, '}'); i >= 0 {
			head, val, ok = line[:i+1], strings.TrimSpace(line[i+1:]), true
		}
		if !ok {
			continue
		}
		n, rest, _ := strings.Cut(head, "{")
		if n != name {
			continue
		}
		have := map[string]string{}
		for _, m := range labelRE.FindAllStringSubmatch(rest, -1) {
			have[m[1]] = m[2]
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		v, err := strconv.ParseFloat(strings.Fields(val)[0], 64)
		if err != nil {
			t.Fatalf("replica %s /metrics: %q: %v", r.name, line, err)
		}
		sum += v
	}
	return sum
}

// admin calls the replica's operator admin API and requires a 2xx.
func (r *replica) admin(t *testing.T, method, path string, body any) []byte {
	t.Helper()
	out, err := (&demo.Env{}).Admin(context.Background(), method, r.adminURL+path, body)
	if err != nil {
		t.Fatalf("replica %s: %v", r.name, err)
	}
	return out
}

// replicaBrowser is a browser with a cookie jar that talks to the site
// through the load balancer, and can pin a request to one replica.
type replicaBrowser struct {
	t      *testing.T
	e      *replicaEnv
	client *http.Client
}

func (e *replicaEnv) newBrowser() *replicaBrowser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return &replicaBrowser{t: e.t, e: e, client: &http.Client{
		Jar:           jar,
		Timeout:       outageBound,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type replicaPage struct {
	status   int
	location string
	body     string
}

// send makes a request; replica "" lets the balancer choose. A transport
// error is returned, not fatal, for the outage tests.
func (b *replicaBrowser) send(replica, method, u string, form url.Values, accept string) (replicaPage, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return replicaPage{}, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Accept", accept)
	if replica != "" {
		req.Header.Set(replicaHeader, replica)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return replicaPage{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return replicaPage{}, err
	}
	return replicaPage{status: resp.StatusCode, location: resp.Header.Get("Location"), body: string(raw)}, nil
}

func (b *replicaBrowser) must(replica, method, u string, form url.Values) replicaPage {
	b.t.Helper()
	p, err := b.send(replica, method, u, form, "text/html")
	if err != nil {
		b.t.Fatalf("%s %s on replica %q: %v", method, u, replica, err)
	}
	return p
}

// whoami asks the app, through the gateway on replica, who is signed in:
// the status, and the email the upstream received (for a 200).
func (b *replicaBrowser) whoami(replica string) (int, string, error) {
	p, err := b.send(replica, http.MethodGet, b.e.baseURL+"/whoami", nil, "application/json")
	if err != nil || p.status != http.StatusOK {
		return p.status, "", err
	}
	var out upstream.Identity
	if err := json.Unmarshal([]byte(p.body), &out); err != nil {
		return p.status, "", fmt.Errorf("upstream JSON: %w: %s", err, p.body)
	}
	return p.status, out.Headers["X-Sso-Email"], nil
}

// requireAlice requires that replica lets the browser through as Alice.
func (b *replicaBrowser) requireAlice(replica string) {
	b.t.Helper()
	status, email, err := b.whoami(replica)
	if err != nil || status != http.StatusOK || email != demo.AliceEmail {
		b.t.Fatalf("replica %s: want Alice let through, got %d %q %v", replica, status, email, err)
	}
}

// requireRefused requires that replica sends the browser to sign in.
func (b *replicaBrowser) requireRefused(replica string) {
	b.t.Helper()
	status, email, err := b.whoami(replica)
	if err != nil || status != http.StatusUnauthorized {
		b.t.Fatalf("replica %s: want 401, got %d %q %v", replica, status, email, err)
	}
}

// startLogin posts Alice's email to the gateway on replica and returns the
// IdP URL (with the AuthnRequest) it redirects to.
func (b *replicaBrowser) startLogin(replica string) string {
	b.t.Helper()
	p := b.must(replica, http.MethodPost, b.e.baseURL+"/sso/login", url.Values{"email": {demo.AliceEmail}})
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location, b.e.idp.SSOURL()) {
		b.t.Fatalf("login on replica %s: want 303 to the IdP, got %d %q\n%s", replica, p.status, p.location, p.body)
	}
	return p.location
}

// signIn runs the whole browser flow as Alice, the login started on
// replica start and the SAML response posted to replica acs, and requires
// the ACS's 303 to the app.
func (b *replicaBrowser) signIn(start, acs string) {
	b.t.Helper()
	idpPage := b.must("", http.MethodGet, b.startLogin(start), nil)
	if idpPage.status != http.StatusOK {
		b.t.Fatalf("IdP login page: %d\n%s", idpPage.status, idpPage.body)
	}
	action, fields := parseFirstForm(b.t, idpPage.body)
	fields.Set("user", demo.AliceEmail)
	fields.Set("password", demo.DefaultPassword)
	if action == "" {
		action = b.e.idp.SSOURL()
	}
	resp := b.must("", http.MethodPost, resolveURL(b.e.idpURL, action), fields)
	if resp.status != http.StatusOK {
		b.t.Fatalf("IdP credentials: %d\n%s", resp.status, resp.body)
	}
	acsURL, samlForm := parseFirstForm(b.t, resp.body)
	if samlForm.Get("SAMLResponse") == "" || !strings.HasPrefix(acsURL, b.e.baseURL+"/") {
		b.t.Fatalf("IdP did not answer with a SAMLResponse form for the site (%q):\n%s", acsURL, resp.body)
	}
	p := b.must(acs, http.MethodPost, acsURL, samlForm)
	if p.status != http.StatusSeeOther {
		b.t.Fatalf("ACS on replica %s: want 303 to the app, got %d\n%s", acs, p.status, p.body)
	}
}

func resolveURL(base, ref string) string {
	bu, _ := url.Parse(base)
	ru, err := url.Parse(ref)
	if err != nil {
		return ref
	}
	return bu.ResolveReference(ru).String()
}

// parseFirstForm returns the action and the named inputs of a page's
// first form.
func parseFirstForm(t *testing.T, body string) (string, url.Values) {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	attr := func(n *html.Node, name string) string {
		for _, a := range n.Attr {
			if a.Key == name {
				return a.Val
			}
		}
		return ""
	}
	var action string
	found := false
	vals := url.Values{}
	var walk func(*html.Node, bool)
	walk = func(n *html.Node, inForm bool) {
		if n.Type == html.ElementNode && n.Data == "form" && !found {
			found, inForm = true, true
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

// scimOn is a SCIM client of the demo org on one replica, directly.
func (e *replicaEnv) scimOn(r *replica) *scimConn {
	return &scimConn{
		base:   r.gatewayURL + "/sso/scim/" + demo.OrgID + "/v2",
		token:  e.scim,
		client: &http.Client{Timeout: 30 * time.Second},
	}
}

// aliceID finds Alice's SCIM id through c.
func aliceID(t *testing.T, c *scimConn) string {
	t.Helper()
	status, out, err := c.do(context.Background(), http.MethodGet, "/Users?filter="+url.QueryEscape(`userName eq "`+demo.AliceEmail+`"`), nil)
	res, _ := out["Resources"].([]any)
	if err != nil || status != http.StatusOK || len(res) != 1 {
		t.Fatalf("finding Alice: %d %v %v", status, out, err)
	}
	id, _ := res[0].(map[string]any)["id"].(string)
	return id
}

// setActive deactivates or reactivates a user through c.
func setActive(t *testing.T, c *scimConn, id string, active bool) {
	t.Helper()
	status, out, err := c.do(context.Background(), http.MethodPatch, "/Users/"+id, map[string]any{
		"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
		"Operations": []any{map[string]any{"op": "replace", "path": "active", "value": active}},
	})
	if err != nil || status != http.StatusOK || out["active"] != active {
		t.Fatalf("SCIM active=%v: %d %v %v", active, status, out, err)
	}
}

// warm makes replica serve b's session from its re-check cache, and
// requires that it does (the hit counter moves): a replica that reused
// nothing would refuse a revoked session on its next request whether or
// not the change reached it, and prove nothing about the 1 s.
func (b *replicaBrowser) warm(r *replica) {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b.requireAlice(r.name)
		before := r.metric(b.t, "ssogate_recheck_cache_total", "result", "hit")
		b.requireAlice(r.name)
		if r.metric(b.t, "ssogate_recheck_cache_total", "result", "hit") > before {
			return
		}
		// The cache is dropped while the replica's notification
		// connection is down (after a database restart, until it is
		// back).
		if time.Now().After(deadline) {
			b.t.Fatalf("replica %s never served the session from its re-check cache", r.name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// revocationDelay polls replica r with b's session from the moment a
// revocation was acknowledged (at) until r refuses it, and returns how
// long that took (until the refusal came back). A request sent more than
// revocationBound after at that still gets through fails the test.
func (b *replicaBrowser) revocationDelay(r *replica, at time.Time, what string) time.Duration {
	b.t.Helper()
	for {
		sent := time.Now()
		status, email, err := b.whoami(r.name)
		if err != nil {
			b.t.Fatalf("replica %s after %s: %v", r.name, what, err)
		}
		switch {
		case status == http.StatusUnauthorized:
			d := time.Since(at)
			b.t.Logf("%s reached replica %s after %v", what, r.name, d.Round(time.Millisecond))
			return d
		case status != http.StatusOK || email != demo.AliceEmail:
			b.t.Fatalf("replica %s after %s: %d %q", r.name, what, status, email)
		}
		if d := sent.Sub(at); d > revocationBound {
			b.t.Fatalf("%s: replica %s still let the session through %v later (bound %v)", what, r.name, d.Round(time.Millisecond), revocationBound)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
