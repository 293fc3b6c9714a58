//go:build unix

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store/pgtest"
)

// TestCrashLosesNoAcknowledgedWrite runs the ssogate command as a
// process, provisions users into it over SCIM from several goroutines
// while renaming the organization through the operator admin API (a
// configuration write), kills it with SIGKILL in the middle of the
// stream and starts it again on the same data directory, several times.
// After every restart each write that got a 2xx must be there with its
// last acknowledged value (a write cut off by the kill may or may not
// have landed, nothing else), the userName and externalId indexes must
// agree with the records, no user may exist that no acknowledged or
// cut-off create made, and the store must open without errors (each run
// logs "opened store" once and no error). SPEC §8: "a crash never loses
// an acknowledged SCIM or configuration write".
//
// SIGKILL ends the process, not the machine: what the process had handed
// to the kernel survives, so this proves that nothing is acknowledged
// before Badger has written it, not that it was fsynced (the store's
// synced writes cover power loss; see store.Open).
func TestCrashLosesNoAcknowledgedWrite(t *testing.T) {
	crashes := 5
	if testing.Short() {
		crashes = 2
	}
	gw := newCrashGateway(t)
	gw.writeCaddyfile()

	gw.start()
	token := gw.createSCIMOrg()
	scim := &scimConn{
		base:   "http://" + gw.gateway + "/sso/scim/" + crashOrg + "/v2",
		token:  token,
		client: &http.Client{Timeout: 10 * time.Second},
	}
	// The organization starts with its owner's account.
	model := &userModel{others: countUsers(t, scim), orgName: crashOrgName}
	for round := range crashes {
		if round > 0 {
			gw.start()
			verify(t, gw, scim, model, round)
		}
		acked := streamUntilKilled(t, scim, model, round, gw)
		t.Logf("round %d: %d writes acknowledged before SIGKILL, %d users known, organization named %q",
			round, acked, len(model.users), model.orgName)
		if t.Failed() {
			return
		}
	}

	// After the last crash: recover once more, check, and shut down
	// gracefully, which must close the recovered store without error.
	gw.start()
	verify(t, gw, scim, model, crashes)
	gw.stopGracefully()
	for i, run := range gw.logs {
		checkRunLog(t, i, run, i == len(gw.logs)-1)
	}
}

const (
	crashOrg     = "crashtest"
	crashOrgName = "Crash Test Inc."
	crashDomain  = "crash.example"
	// workers is how many IdP connections stream writes at once; the
	// writes of one worker are sequential, like an IdP's per-user queue.
	workers = 4
	// ackedBeforeKill is how many writes a round acknowledges before the
	// kill is armed, so every round crashes mid-stream and not before it.
	ackedBeforeKill = 40
)

// runAsSSOGate, set in a child's environment, makes this test binary run
// main() instead of the tests: the child is then the ssogate command,
// built from the same sources with the same flags (-race included) as the
// test, without a second link of all of Caddy (which takes longer than
// the whole test on a loaded machine).
const runAsSSOGate = "SSOGATE_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runAsSSOGate) == "1" {
		main()
		return
	}
	// pgtest stops the PostgreSQL server it may start for the tests.
	pgtest.Main(m)
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// ownLoopbackHost returns an address of 127.0.0.0/8 that nothing else here
// uses, for the ssogate processes under test to listen on: Caddy sets
// SO_REUSEPORT, so a second Caddy (another test's, in-process) that picks
// the same port on the same address binds without error and takes half
// the connections. On an address of its own, a port taken in the
// meantime cannot be shared. The admin API accepts such a host only when
// the config lists it in origins.
func ownLoopbackHost(t *testing.T) string {
	t.Helper()
	for range 100 {
		host := fmt.Sprintf("127.%d.%d.%d", 64+rand.IntN(128), rand.IntN(256), 1+rand.IntN(254))
		if ln, err := net.Listen("tcp", host+":0"); err == nil {
			ln.Close()
			return host
		}
	}
	t.Fatal("no free loopback address")
	return ""
}

// freeAddrOn is freeLoopbackAddr on host.
func freeAddrOn(t *testing.T, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// newCrashGateway is a crashGateway on addresses of its own
// (ownLoopbackHost).
func newCrashGateway(t *testing.T) *crashGateway {
	t.Helper()
	host := ownLoopbackHost(t)
	return &crashGateway{t: t, dir: t.TempDir(), gateway: freeAddrOn(t, host), admin: freeAddrOn(t, host)}
}

// host is the address the gateway listens on, without its port.
func (g *crashGateway) host() string {
	h, _, _ := net.SplitHostPort(g.gateway)
	return h
}

// crashGateway is the ssogate process under test, restarted on the same
// data directory and addresses.
type crashGateway struct {
	t                    *testing.T
	dir                  string
	gateway, admin       string // listen addresses
	gatewayURL, adminURL string
	caddyfile, homeDir   string
	storage              string

	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has been waited for
	exitErr error         // cmd.Wait's result, once exited is closed
	logs    []string      // one log file per process run
}

func (g *crashGateway) writeCaddyfile() {
	g.storage = filepath.Join(g.dir, "db")
	g.homeDir = filepath.Join(g.dir, "home")
	g.adminURL = "http://" + g.admin
	g.gatewayURL = "http://" + g.gateway
	host, port, _ := net.SplitHostPort(g.gateway)
	cfg := fmt.Sprintf(`{
	admin %[1]s {
		origins %[1]s
	}
	persist_config off
	grace_period 1s
	sso {
		base_url %s
		storage_path %s
	}
}

http://%s:%s {
	bind %s
	sso_gateway
	respond "upstream"
}
`, g.admin, g.gatewayURL, g.storage, host, port, host)
	g.caddyfile = filepath.Join(g.dir, "Caddyfile")
	if err := os.WriteFile(g.caddyfile, []byte(cfg), 0o600); err != nil {
		g.t.Fatal(err)
	}
	if err := os.MkdirAll(g.homeDir, 0o700); err != nil {
		g.t.Fatal(err)
	}
}

// start runs ssogate and waits until its config is up.
func (g *crashGateway) start() {
	t := g.t
	t.Helper()
	logPath := filepath.Join(g.dir, fmt.Sprintf("run-%d.log", len(g.logs)))
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	g.logs = append(g.logs, logPath)
	cmd := exec.Command(os.Args[0], "run", "--config", g.caddyfile, "--adapter", "caddyfile")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Keep Caddy's own files (certificates, autosave) out of the real
	// home directory.
	cmd.Env = append(os.Environ(), runAsSSOGate+"=1",
		"HOME="+g.homeDir, "XDG_DATA_HOME="+g.homeDir, "XDG_CONFIG_HOME="+g.homeDir)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("starting ssogate: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		g.exitErr = cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	g.cmd, g.exited = cmd, exited
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-exited
		}
	})

	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("ssogate exited while starting: %v\n%s", g.exitErr, readFile(logPath))
		default:
		}
		// The gateway serves as soon as the http app starts, but the
		// admin API's /sso/ routes answer 503 until the whole config
		// has started, which the run command logs.
		if strings.Contains(readFile(logPath), `"msg":"serving initial configuration"`) {
			if err := getOK(g.gatewayURL + "/sso/login"); err != nil {
				t.Fatalf("ssogate started but the gateway does not answer: %v", err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ssogate did not come up\n%s", readFile(logPath))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill ends the process the hard way: no shutdown, no flush, no Close.
func (g *crashGateway) kill() {
	if err := g.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		g.t.Errorf("SIGKILL: %v", err)
	}
	<-g.exited
}

// stopGracefully asks the admin API to stop and requires a clean exit.
func (g *crashGateway) stopGracefully() {
	t := g.t
	resp, err := http.Post(g.adminURL+"/stop", "application/json", nil)
	if err == nil {
		resp.Body.Close()
	}
	select {
	case <-g.exited:
		if g.exitErr != nil {
			t.Errorf("ssogate exited with %v after /stop", g.exitErr)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("ssogate did not stop")
		_ = g.cmd.Process.Signal(syscall.SIGKILL)
		<-g.exited
	}
}

// createSCIMOrg sets up the organization through the process's operator
// admin API and returns its SCIM bearer token.
func (g *crashGateway) createSCIMOrg() string {
	t := g.t
	admin := func(method, path string, body any) []byte {
		t.Helper()
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, g.adminURL+path, bytes.NewReader(raw))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("admin %s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode/100 != 2 {
			t.Fatalf("admin %s %s: %s: %s", method, path, resp.Status, out)
		}
		return out
	}
	admin(http.MethodPost, "/sso/orgs", map[string]any{"id": crashOrg, "name": crashOrgName, "owner_email": "owner@" + crashDomain})
	admin(http.MethodPost, "/sso/orgs/"+crashOrg+"/domains", map[string]any{"name": crashDomain})
	var tok struct {
		Token string `json:"token"`
	}
	if out := admin(http.MethodPost, "/sso/orgs/"+crashOrg+"/scim-token", nil); json.Unmarshal(out, &tok) != nil || tok.Token == "" {
		t.Fatalf("no SCIM token in %s", out)
	}
	return tok.Token
}

// checkRunLog requires that a process run opened the store exactly once,
// logged no error and did not panic; the last run, stopped gracefully,
// must also have closed the store.
func checkRunLog(t *testing.T, run int, path string, graceful bool) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	opened, closed := 0, 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var entry struct {
			Level  string `json:"level"`
			Logger string `json:"logger"`
			Msg    string `json:"msg"`
			Error  string `json:"error"`
		}
		if json.Unmarshal([]byte(line), &entry) != nil {
			if strings.Contains(line, "panic") {
				t.Errorf("run %d: %s", run, line)
			}
			continue
		}
		switch {
		case entry.Logger == "sso.store" && entry.Msg == "opened store":
			opened++
		case entry.Logger == "sso.store" && entry.Msg == "closed store":
			closed++
			if entry.Error != "" {
				t.Errorf("run %d: closing the store: %s", run, entry.Error)
			}
		}
		if entry.Level == "error" || entry.Level == "fatal" || entry.Level == "panic" ||
			(strings.HasPrefix(entry.Logger, "sso") && entry.Level == "warn") {
			t.Errorf("run %d logged: %s", run, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if opened != 1 {
		t.Errorf("run %d opened the store %d times, want 1", run, opened)
	}
	if graceful && closed != 1 {
		t.Errorf("run %d (stopped gracefully) closed the store %d times, want 1", run, closed)
	}
}

func getOK(u string) error {
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return nil
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// userModel is what the test knows about the provisioned users: what was
// acknowledged, and what was cut off by a kill and may or may not have
// been written.
type userModel struct {
	mu     sync.Mutex
	users  []*userRecord
	others int // users the test did not provision

	// The organization's name, renamed through the operator admin API
	// meanwhile: a configuration write.
	orgName, orgNameInFlight string
}

type userRecord struct {
	worker     int
	userName   string
	externalID string
	id         string // "" while the create is unacknowledged
	acked      string // last acknowledged displayName
	// inFlight is a displayName sent without an answer (the process was
	// killed); after the restart it is there or acked is.
	inFlight string
	// createInFlight marks a create without an answer: the user may or
	// may not exist after the restart.
	createInFlight bool
}

func (m *userModel) add(r *userRecord) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.users = append(m.users, r)
}

// scimConn talks to the organization's SCIM endpoint as its IdP would.
type scimConn struct {
	base, token string
	client      *http.Client
}

// do sends one SCIM request. err is set only when no status came back,
// i.e. the write's fate is unknown.
func (c *scimConn) do(ctx context.Context, method, path string, body any) (int, map[string]any, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	// A 2xx status is the acknowledgement, even if the body is cut off.
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out, nil
}

func userBody(r *userRecord, displayName string) map[string]any {
	return map[string]any{
		"schemas":     []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
		"userName":    r.userName,
		"externalId":  r.externalID,
		"displayName": displayName,
		"name":        map[string]any{"givenName": "Worker", "familyName": displayName},
		"emails":      []any{map[string]any{"value": r.userName, "type": "work", "primary": true}},
		"active":      true,
	}
}

// streamUntilKilled runs the workers until the process is killed under
// them and returns how many writes were acknowledged.
func streamUntilKilled(t *testing.T, c *scimConn, m *userModel, round int, gw *crashGateway) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu     sync.Mutex
		acked  int
		armed  = make(chan struct{})
		failed = make(chan string, workers+1)
	)
	ack := func() {
		mu.Lock()
		defer mu.Unlock()
		acked++
		if acked == ackedBeforeKill {
			close(armed)
		}
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if msg := streamWrites(ctx, c, m, round, w, ack); msg != "" {
				failed <- msg
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if msg := streamOrgRenames(ctx, gw.adminURL, m, round, ack); msg != "" {
			failed <- msg
		}
	}()
	select {
	case <-armed:
		// Let the stream run on for a moment so the kill lands between,
		// during and after commits alike.
		time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
	case msg := <-failed:
		t.Error(msg)
	case <-time.After(30 * time.Second):
		t.Error("no SCIM write stream: too few writes acknowledged in 30s")
	}
	gw.kill()
	wg.Wait()
	// Connections to the dead process must not be tried on the next one.
	c.client.CloseIdleConnections()
	close(failed)
	for msg := range failed {
		t.Error(msg)
	}
	return acked
}

// streamOrgRenames renames the organization through the admin API until a
// request goes unanswered. It returns a message for a refused write.
func streamOrgRenames(ctx context.Context, adminURL string, m *userModel, round int, ack func()) string {
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	for seq := 0; ; seq++ {
		name := fmt.Sprintf("Crash r%d s%d", round, seq)
		m.mu.Lock()
		m.orgNameInFlight = name
		m.mu.Unlock()
		raw, _ := json.Marshal(map[string]any{"name": name})
		req, err := http.NewRequestWithContext(ctx, http.MethodPatch, adminURL+"/sso/orgs/"+crashOrg, bytes.NewReader(raw))
		if err != nil {
			return err.Error()
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return ""
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Sprintf("renaming the organization: %s: %s", resp.Status, body)
		}
		m.mu.Lock()
		m.orgName, m.orgNameInFlight = name, ""
		m.mu.Unlock()
		ack()
	}
}

// streamWrites is one worker: it creates users and updates its own users'
// displayName (alternately by PATCH and PUT) until a request goes
// unanswered. It returns a message for a refused write.
func streamWrites(ctx context.Context, c *scimConn, m *userModel, round, worker int, ack func()) string {
	var mine []*userRecord
	m.mu.Lock()
	for _, r := range m.users {
		if r.worker == worker && r.id != "" {
			mine = append(mine, r)
		}
	}
	m.mu.Unlock()
	for seq := 0; ; seq++ {
		if len(mine) < 3 || rand.IntN(3) == 0 {
			n := fmt.Sprintf("r%dw%dn%d", round, worker, seq)
			r := &userRecord{worker: worker, userName: n + "@" + crashDomain, externalID: "ext-" + n, createInFlight: true}
			m.add(r)
			status, out, err := c.do(ctx, http.MethodPost, "/Users", userBody(r, "v0"))
			if err != nil {
				return "" // killed: the create's fate is checked after the restart
			}
			id, _ := out["id"].(string)
			if status != http.StatusCreated || id == "" {
				return fmt.Sprintf("create %s: status %d: %v", r.userName, status, out)
			}
			m.mu.Lock()
			r.id, r.acked, r.createInFlight = id, "v0", false
			m.mu.Unlock()
			ack()
			mine = append(mine, r)
			continue
		}
		r := mine[rand.IntN(len(mine))]
		value := fmt.Sprintf("r%d-s%d", round, seq)
		m.mu.Lock()
		r.inFlight = value
		m.mu.Unlock()
		var (
			status int
			out    map[string]any
			err    error
		)
		if seq%2 == 0 {
			status, out, err = c.do(ctx, http.MethodPatch, "/Users/"+r.id, map[string]any{
				"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
				"Operations": []any{map[string]any{"op": "replace", "path": "displayName", "value": value}},
			})
		} else {
			status, out, err = c.do(ctx, http.MethodPut, "/Users/"+r.id, userBody(r, value))
		}
		if err != nil {
			return ""
		}
		if status != http.StatusOK {
			return fmt.Sprintf("update %s: status %d: %v", r.userName, status, out)
		}
		m.mu.Lock()
		r.acked, r.inFlight = value, ""
		m.mu.Unlock()
		ack()
	}
}

// verify checks the restarted process against the model, then folds the
// writes that turned out to have landed into it.
func verify(t *testing.T, gw *crashGateway, c *scimConn, m *userModel, round int) {
	t.Helper()
	ctx := context.Background()
	resp, err := http.Get(gw.adminURL + "/sso/orgs/" + crashOrg)
	if err != nil {
		t.Fatal(err)
	}
	var org struct {
		Name string `json:"name"`
	}
	err = json.NewDecoder(resp.Body).Decode(&org)
	resp.Body.Close()
	switch {
	case err != nil || resp.StatusCode != http.StatusOK:
		t.Fatalf("after crash %d: GET organization: %s %v", round, resp.Status, err)
	case org.Name == m.orgName:
	case m.orgNameInFlight != "" && org.Name == m.orgNameInFlight:
		m.orgName = org.Name
	default:
		t.Errorf("after crash %d: organization named %q, want the acknowledged %q (or the unanswered %q)",
			round, org.Name, m.orgName, m.orgNameInFlight)
	}
	m.orgNameInFlight = ""

	get := func(path string) map[string]any {
		t.Helper()
		status, out, err := c.do(ctx, http.MethodGet, path, nil)
		if err != nil || status != http.StatusOK {
			t.Fatalf("after crash %d: GET %s: %d %v %v", round, path, status, out, err)
		}
		return out
	}
	filter := func(attr, value string) []any {
		t.Helper()
		out := get("/Users?filter=" + url.QueryEscape(attr+` eq "`+value+`"`))
		res, _ := out["Resources"].([]any)
		return res
	}
	var kept []*userRecord
	for _, r := range m.users {
		if r.id == "" {
			// A create that got no answer: all or nothing.
			res := filter("userName", r.userName)
			switch len(res) {
			case 0:
				continue
			case 1:
				u := res[0].(map[string]any)
				r.id, _ = u["id"].(string)
				if u["displayName"] != "v0" || u["externalId"] != r.externalID {
					t.Errorf("after crash %d: half-created user %s: %v", round, r.userName, u)
				}
				r.acked, r.createInFlight = "v0", false
			default:
				t.Errorf("after crash %d: %d users named %s", round, len(res), r.userName)
				continue
			}
		}
		u := get("/Users/" + r.id)
		got, _ := u["displayName"].(string)
		switch {
		case got == r.acked:
		case r.inFlight != "" && got == r.inFlight:
			r.acked = got
		default:
			t.Errorf("after crash %d: user %s has displayName %q, want the acknowledged %q (or the unanswered %q)",
				round, r.userName, got, r.acked, r.inFlight)
		}
		r.inFlight = ""
		if u["userName"] != r.userName {
			t.Errorf("after crash %d: user %s has userName %v", round, r.id, u["userName"])
		}
		for _, attr := range []struct{ name, value string }{{"userName", r.userName}, {"externalId", r.externalID}} {
			res := filter(attr.name, attr.value)
			if len(res) != 1 || res[0].(map[string]any)["id"] != r.id {
				t.Errorf("after crash %d: %s eq %q finds %v, want only %s", round, attr.name, attr.value, res, r.id)
			}
		}
		kept = append(kept, r)
	}
	m.users = kept
	// No user that the model does not know: nothing duplicated, nothing
	// resurrected.
	if got, want := countUsers(t, c), len(kept)+m.others; got != want {
		t.Errorf("after crash %d: %d users stored, want %d", round, got, want)
	}
}

func countUsers(t *testing.T, c *scimConn) int {
	t.Helper()
	status, out, err := c.do(context.Background(), http.MethodGet, "/Users?count=1", nil)
	total, ok := out["totalResults"].(float64)
	if err != nil || status != http.StatusOK || !ok {
		t.Fatalf("counting users: %d %v %v", status, out, err)
	}
	return int(total)
}
