//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestAuditTrailStaysBoundedAndPaged runs the ssogate command with an
// `audit` block, floods an organization's SCIM endpoint with wrong tokens
// from many addresses while its IdP keeps provisioning with the right
// one, and reads the trail back with `ssogate org audit`: the IdP is
// never throttled, the flood is a handful of events whose counts add up,
// and the CLI pages through everything.
func TestAuditTrailStaysBoundedAndPaged(t *testing.T) {
	gw := newCrashGateway(t)
	gw.writeCaddyfile()
	cfg, err := os.ReadFile(gw.caddyfile)
	if err != nil {
		t.Fatal(err)
	}
	line := "\t\tstorage_path " + gw.storage + "\n"
	withAudit := strings.Replace(string(cfg), line, line+"\t\taudit {\n\t\t\tmax_age 30d\n\t\t\tmax_events 5000\n\t\t\taggregate_window 1m\n\t\t}\n", 1)
	if withAudit == string(cfg) {
		t.Fatal("no storage_path line in the Caddyfile")
	}
	if err := os.WriteFile(gw.caddyfile, []byte(withAudit), 0o600); err != nil {
		t.Fatal(err)
	}
	gw.start()
	t.Cleanup(gw.stopGracefully)
	token := gw.createSCIMOrg()
	users := gw.gatewayURL + "/sso/scim/" + crashOrg + "/v2/Users"

	const sources, perSource = 20, 10
	var wg sync.WaitGroup
	statuses := make(chan int, sources*perSource*2)
	for i := range sources {
		wg.Go(func() {
			c := clientFrom(t, fmt.Sprintf("127.0.20.%d", i+1))
			for j := range perSource {
				statuses <- scimGet(t, c, users, fmt.Sprintf("wrong-%d-%d", i, j))
				if i == 0 { // the IdP shares the first address
					if s := scimGet(t, c, users, token); s != http.StatusOK {
						t.Errorf("valid token from the flooded address: %d", s)
					}
				}
			}
		})
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusUnauthorized && s != http.StatusTooManyRequests {
			t.Errorf("wrong token: %d", s)
		}
	}

	// One page, and the hint for the next.
	out, stderr := gw.cli(t, "org", "audit", crashOrg, "--limit", "2")
	first := decodeEvents(t, out)
	m := regexp.MustCompile(`--before (\S+)`).FindStringSubmatch(stderr)
	if len(first) != 2 || m == nil {
		t.Fatalf("first page: %d events, stderr %q", len(first), stderr)
	}
	out, _ = gw.cli(t, "org", "audit", crashOrg, "--limit", "2", "--before", m[1])
	second := decodeEvents(t, out)
	if len(second) != 2 || second[0].ID == first[0].ID || second[0].ID == first[1].ID {
		t.Errorf("second page %+v after %+v", second, first)
	}

	// Everything, three at a time.
	out, _ = gw.cli(t, "org", "audit", crashOrg, "--all", "--limit", "3")
	all := decodeEvents(t, out)
	failures, kinds, ids := 0, 0, map[string]bool{}
	for _, e := range all {
		if ids[e.ID] {
			t.Errorf("event %s listed twice", e.ID)
		}
		ids[e.ID] = true
		if e.Action == "scim.auth" {
			kinds++
			failures += max(e.Count, 1)
		}
	}
	if failures != sources*perSource || kinds > 4 {
		t.Errorf("%d scim.auth events counting %d failures; want at most 4 counting %d", kinds, failures, sources*perSource)
	}
	if !ids[first[0].ID] || !ids[second[1].ID] || len(all) < 6 {
		t.Errorf("--all gave %d events, missing the first pages'", len(all))
	}
}

type cliEvent struct {
	ID     string `json:"id"`
	Action string `json:"action"`
	Count  int    `json:"count"`
}

func decodeEvents(t *testing.T, out string) []cliEvent {
	t.Helper()
	var evs []cliEvent
	if err := json.Unmarshal([]byte(out), &evs); err != nil {
		t.Fatalf("ssogate org audit printed %q: %v", out, err)
	}
	return evs
}

// cli runs an ssogate command against the gateway's admin endpoint and
// returns its standard output and error.
func (g *crashGateway) cli(t *testing.T, args ...string) (string, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append(args, "--address", g.admin)...)
	cmd.Env = append(os.Environ(), runAsSSOGate+"=1", "HOME="+g.homeDir, "XDG_DATA_HOME="+g.homeDir, "XDG_CONFIG_HOME="+g.homeDir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ssogate %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), stderr.String()
}

func clientFrom(t *testing.T, ip string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
}

func scimGet(t *testing.T, c *http.Client, u, token string) int {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Error(err)
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		t.Errorf("GET %s: %v", u, err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
