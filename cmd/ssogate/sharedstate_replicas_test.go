//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store/pgtest"
)

// sharedStateDSNEnv carries the PostgreSQL DSN to the replicas; the
// Caddyfile names the variable, so the DSN is in no file.
const sharedStateDSNEnv = "SSOGATE_TEST_SHARED_STATE_DSN"

// sharedStateReplica is one ssogate process of a pair on one PostgreSQL schema.
type sharedStateReplica struct {
	t                    *testing.T
	name                 string
	gatewayURL, adminURL string
	log                  string
}

// host is the replicas' address (ownLoopbackHost): one for both, as
// behind one load balancer, so that the browser's cookies go to both.
func startSharedStateReplica(t *testing.T, host, name, dsn, schema string) *sharedStateReplica {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	gateway, admin := freeAddrOn(t, host), freeAddrOn(t, host)
	r := &sharedStateReplica{t: t, name: name, gatewayURL: "http://" + gateway, adminURL: "http://" + admin, log: filepath.Join(dir, "run.log")}
	_, port, _ := strings.Cut(gateway, ":")
	cfg := fmt.Sprintf(`{
	admin %[1]s {
		origins %[1]s
	}
	persist_config off
	grace_period 1s
	sso {
		base_url %s
		storage postgres {
			dsn {env.%s}
			schema %s
		}
		password_hashing {
			memory 8MiB
			time 1
			threads 1
		}
	}
}

http://%s:%s {
	bind %s
	sso_gateway
	respond "upstream"
}
`, admin, r.gatewayURL, sharedStateDSNEnv, schema, host, port, host)
	caddyfile := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(caddyfile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(r.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "run", "--config", caddyfile, "--adapter", "caddyfile")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), runAsSSOGate+"=1", sharedStateDSNEnv+"="+dsn,
		"HOME="+home, "XDG_DATA_HOME="+home, "XDG_CONFIG_HOME="+home)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", name, readFile(r.log))
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(readFile(r.log), `"msg":"serving initial configuration"`) {
		select {
		case <-exited:
			t.Fatalf("%s exited while starting\n%s", name, readFile(r.log))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not come up\n%s", name, readFile(r.log))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return r
}

// admin calls the replica's operator admin API.
func (r *sharedStateReplica) admin(method, path string, body any) map[string]any {
	r.t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, r.adminURL+"/sso"+path, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatalf("admin %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		r.t.Fatalf("admin %s %s: %s: %s", method, path, resp.Status, out)
	}
	var m map[string]any
	_ = json.Unmarshal(out, &m)
	return m
}

// sharedStateBrowser is a cookie jar shared by both replicas: they listen on
// one host, and cookies do not tell ports apart, as a load balancer's
// single origin would not either.
type sharedStateBrowser struct {
	t      *testing.T
	client *http.Client
}

func newSharedStateBrowser(t *testing.T) *sharedStateBrowser {
	jar, _ := cookiejar.New(nil)
	return &sharedStateBrowser{t: t, client: &http.Client{
		Jar:           jar,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (b *sharedStateBrowser) do(method, u string, form url.Values) (int, string, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, u, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Accept", "text/html")
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(out)
}

var sharedStateCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrfOf returns the CSRF token of the page's forms.
func (b *sharedStateBrowser) csrfOf(page string) string {
	b.t.Helper()
	m := sharedStateCSRF.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("no CSRF token in\n%.2000s", page)
	}
	return m[1]
}

// TestReplicasShareThrottlesAndFlashes runs two ssogate processes on one
// PostgreSQL schema and checks what issue 12 asks of shared state: an
// admin's one-time result posted to one replica is shown by the other,
// once; SCIM authentication failures and password failures counted by
// either replica lock on both, so two replicas give an attacker no more
// guesses than one.
func TestReplicasShareThrottlesAndFlashes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two gateway processes")
	}
	dsn, schema := pgtest.Schema(t)
	host := ownLoopbackHost(t)
	a := startSharedStateReplica(t, host, "A", dsn, schema)
	b := startSharedStateReplica(t, host, "B", dsn, schema)

	const org, owner, password = "replicas", "owner@replicas.test", "orbit lantern meadow 42"
	created := a.admin(http.MethodPost, "/orgs", map[string]any{"id": org, "name": "Replicas", "owner_email": owner})
	link, _ := created["owner_invite_url"].(string)
	if !strings.HasPrefix(link, a.gatewayURL+"/sso/invite/") {
		t.Fatalf("owner_invite_url = %q", link)
	}

	// The owner sets a password through B, with a link A issued, and
	// signs in through A.
	br := newSharedStateBrowser(t)
	onB := strings.Replace(link, a.gatewayURL, b.gatewayURL, 1)
	status, _, page := br.do(http.MethodGet, onB, nil)
	if status != http.StatusOK {
		t.Fatalf("invite page on B: %d\n%s", status, page)
	}
	if status, _, page = br.do(http.MethodPost, onB, url.Values{"csrf": {br.csrfOf(page)}, "password": {password}, "confirm": {password}}); status != http.StatusOK || !strings.Contains(page, "Your password is set") {
		t.Fatalf("setting the password on B: %d\n%.2000s", status, page)
	}
	status, _, page = br.do(http.MethodGet, a.gatewayURL+"/sso/backup?org="+org, nil)
	if status != http.StatusOK {
		t.Fatalf("sign-in page on A: %d", status)
	}
	if status, _, page = br.do(http.MethodPost, a.gatewayURL+"/sso/backup", url.Values{"csrf": {br.csrfOf(page)}, "email": {owner}, "password": {password}}); status != http.StatusSeeOther {
		t.Fatalf("signing in on A: %d\n%.2000s", status, page)
	}

	// A new SCIM token is posted to A; the redirect lands on B, which
	// shows it once.
	_, _, page = br.do(http.MethodGet, a.gatewayURL+"/sso/admin/", nil)
	csrf := br.csrfOf(page)
	if status, _, page = br.do(http.MethodPost, a.gatewayURL+"/sso/admin/start", url.Values{"csrf": {csrf}}); status != http.StatusSeeOther {
		t.Fatalf("start on A: %d\n%.2000s", status, page)
	}
	status, loc, page := br.do(http.MethodPost, a.gatewayURL+"/sso/admin/scim-token", url.Values{"csrf": {csrf}})
	if status != http.StatusSeeOther || !strings.HasPrefix(loc, "/sso/admin/?r=") {
		t.Fatalf("new SCIM token on A: %d %q\n%.2000s", status, loc, page)
	}
	const shown = "New SCIM token generated"
	if status, _, page = br.do(http.MethodGet, b.gatewayURL+loc, nil); status != http.StatusOK || !strings.Contains(page, shown) {
		t.Fatalf("the redirect on B does not show the new token: %d\n%.3000s", status, page)
	}
	for _, r := range []*sharedStateReplica{a, b} {
		if _, _, page = br.do(http.MethodGet, r.gatewayURL+loc, nil); strings.Contains(page, shown) {
			t.Errorf("the token was shown again by %s", r.name)
		}
	}

	// SCIM: the ten failures a source gets are counted across replicas.
	tok, _ := a.admin(http.MethodPost, "/orgs/"+org+"/scim-token", nil)["token"].(string)
	scim := func(r *sharedStateReplica, token string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, r.gatewayURL+"/sso/scim/"+org+"/v2/Users", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := range 10 {
		r := []*sharedStateReplica{a, b}[i%2]
		if s := scim(r, "wrong-token"); s != http.StatusUnauthorized {
			t.Fatalf("SCIM failure %d on %s: %d", i+1, r.name, s)
		}
	}
	for _, r := range []*sharedStateReplica{a, b} {
		if s := scim(r, "wrong-token"); s != http.StatusTooManyRequests {
			t.Errorf("SCIM failure past the limit on %s: %d, want 429", r.name, s)
		}
		if s := scim(r, tok); s != http.StatusOK {
			t.Errorf("the valid token on %s: %d", r.name, s)
		}
	}

	// Passwords: failures for one address, alternating between the
	// replicas. With counts per process the first lock would come after
	// ten admitted guesses (five on each); shared, after the account's
	// five. (Locks last 1 s, 2 s, ...: a stall between two requests can
	// let one more in, never five.)
	_, _, page = br.do(http.MethodGet, a.gatewayURL+"/sso/backup", nil)
	csrf = br.csrfOf(page)
	admitted := 0
	for i := 0; ; i++ {
		r := []*sharedStateReplica{a, b}[i%2]
		status, _, _ := br.do(http.MethodPost, r.gatewayURL+"/sso/backup", url.Values{"csrf": {csrf}, "email": {"nobody@replicas.test"}, "password": {fmt.Sprint("guess ", i)}})
		if status == http.StatusTooManyRequests {
			t.Logf("first lock after %d admitted guesses (on %s)", admitted, r.name)
			break
		}
		if status != http.StatusUnauthorized {
			t.Fatalf("guess %d on %s: %d", i+1, r.name, status)
		}
		if admitted++; admitted >= 10 {
			t.Fatalf("%d guesses admitted across two replicas without a lock: the counts are per process", admitted)
		}
	}
	if admitted < 5 {
		t.Errorf("locked after %d guesses, the account allows 5", admitted)
	}
}
