//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestOrgUnlinkUser runs `ssogate org unlink-user` against a running
// gateway: it forgets a user's stored IdP identifier and says so, names
// an unknown user, and refuses a SCIM-provisioned one with the reason.
func TestOrgUnlinkUser(t *testing.T) {
	gw := newCrashGateway(t)
	gw.writeCaddyfile()
	gw.start()
	t.Cleanup(gw.stopGracefully)
	token := gw.createSCIMOrg()

	body := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"dana@` + crashDomain + `","externalId":"scim-dana","active":true}`
	req, _ := http.NewRequest(http.MethodPost, "http://"+gw.gateway+"/sso/scim/"+crashOrg+"/v2/Users", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("provisioning dana: %s", resp.Status)
	}

	out, _ := gw.cli(t, "org", "unlink-user", crashOrg, "Owner@"+crashDomain)
	var res struct {
		UserName   string `json:"user_name"`
		PreviousID string `json:"previous_id"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.UserName != "owner@"+crashDomain {
		t.Fatalf("unlink-user printed %q (%v)", out, err)
	}

	for _, c := range []struct{ user, want string }{
		{"nobody@" + crashDomain, "no user"},
		{"dana@" + crashDomain, "provisioned by SCIM"},
	} {
		stderr, ok := gw.cliFails(t, "org", "unlink-user", crashOrg, c.user)
		if !ok || !strings.Contains(stderr, c.want) {
			t.Errorf("unlink-user %s: failed=%v, stderr %q; want a failure naming %q", c.user, ok, stderr, c.want)
		}
	}
}

// cliFails runs the ssogate command and reports whether it failed, with
// its standard error.
func (g *crashGateway) cliFails(t *testing.T, args ...string) (string, bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append(args, "--address", g.admin)...)
	cmd.Env = append(os.Environ(), runAsSSOGate+"=1", "HOME="+g.homeDir, "XDG_DATA_HOME="+g.homeDir, "XDG_CONFIG_HOME="+g.homeDir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	return stderr.String(), err != nil
}
