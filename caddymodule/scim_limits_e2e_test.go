package caddymodule_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/ssogate/ssogate/examples/demo"
)

// rawSCIM sends a raw body (content type application/scim+json) and
// returns the status and the decoded SCIM response.
func (c scimClient) raw(method, path, body string) (int, map[string]any) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		c.t.Fatalf("%s %s: %d, not JSON: %.200s", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

func nestedSearch(open, leaf, close string, n int) string {
	raw, _ := json.Marshal(map[string]any{
		"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:SearchRequest"},
		"filter":  strings.Repeat(open, n) + leaf + strings.Repeat(close, n),
	})
	return string(raw)
}

// TestSCIMNestedFilterKeepsTheGatewayUp sends the requests,
// which ended the process with "fatal error: stack overflow", to the
// gateway Caddy runs: each is a SCIM 400, and the gateway serves on (the
// test binary is the process; it would have died).
func TestSCIMNestedFilterKeepsTheGatewayUp(t *testing.T) {
	c := newSCIMClient(t, demo.OrgID)
	for _, req := range []struct{ path, body string }{
		{"/Users/.search", nestedSearch("(", `userName eq "x"`, ")", 100_000)},
		{"/Groups/.search", nestedSearch("(", `displayName eq "x"`, ")", 300_000)},
		{"/Users/.search", nestedSearch("not(", `userName eq "x"`, ")", 200_000)},
	} {
		start := time.Now()
		status, out := c.raw(http.MethodPost, req.path, req.body)
		t.Logf("%s, %d KB: %d %v in %v", req.path, len(req.body)>>10, status, out["scimType"], time.Since(start))
		if status != http.StatusBadRequest || out["scimType"] != "invalidFilter" {
			t.Fatalf("%s: %d %v", req.path, status, out)
		}
	}
	out := c.must(http.StatusOK, http.MethodGet, "/Users?count=1", nil)
	if out["totalResults"].(float64) < 1 {
		t.Fatalf("after: %v", out)
	}
	signInOK(t, newBrowser(t), demo.AliceEmail)
}

// TestSCIMCannotClaimAnotherOrganizationsAddresses: a tenant's SCIM
// client cannot provision a user in a domain the demo organization
// verified (the identity headers would carry that address upstream).
func TestSCIMCannotClaimAnotherOrganizationsAddresses(t *testing.T) {
	ctx := context.Background()
	orgs := env.AdminURL + "/sso/orgs"
	if _, err := env.Admin(ctx, http.MethodPost, orgs, map[string]any{"id": "scim-hostile", "name": "Hostile", "owner_email": "it@hostile.example"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = env.Admin(ctx, http.MethodDelete, orgs+"/scim-hostile", nil) })
	c := newSCIMClient(t, "scim-hostile")
	status, out := c.do(http.MethodPost, "/Users", map[string]any{
		"schemas":  []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
		"userName": "ceo",
		"emails":   []any{map[string]any{"value": "ceo@" + demo.Domain, "primary": true}},
	})
	if status != http.StatusBadRequest || !strings.Contains(out["detail"].(string), "verified by another organization") {
		t.Fatalf("%d %v", status, out)
	}
	c.must(http.StatusCreated, http.MethodPost, "/Users", map[string]any{
		"schemas":  []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
		"userName": "ceo@hostile.example",
	})
}

// TestSCIMLimitsFromConfig: scim_limits in the sso app reach the SCIM
// server (here a small string cap), and the Caddyfile block adapts to it.
func TestSCIMLimitsFromConfig(t *testing.T) {
	var cfg map[string]any
	if err := json.Unmarshal(env.CaddyConfig(), &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["apps"].(map[string]any)["sso"].(map[string]any)["scim_limits"] = map[string]any{"max_string_length": 64}
	raw, _ := json.Marshal(cfg)
	loadConfig(t, raw)
	t.Cleanup(func() { loadConfig(t, env.CaddyConfig()) })

	c := newSCIMClient(t, demo.OrgID)
	id := c.userID(demo.AliceEmail)
	status, out := c.do(http.MethodPatch, "/Users/"+id, scimPatch(map[string]any{"op": "replace", "path": "title", "value": strings.Repeat("t", 65)}))
	if status != http.StatusBadRequest || out["scimType"] != "invalidValue" {
		t.Fatalf("65-byte title under a 64-byte cap: %d %v", status, out)
	}
	c.must(http.StatusOK, http.MethodPatch, "/Users/"+id, scimPatch(map[string]any{"op": "replace", "path": "title", "value": strings.Repeat("t", 64)}))
	c.must(http.StatusOK, http.MethodPatch, "/Users/"+id, scimPatch(map[string]any{"op": "remove", "path": "title"}))

	// A negative or dangerous value does not load.
	cfg["apps"].(map[string]any)["sso"].(map[string]any)["scim_limits"] = map[string]any{"max_filter_depth": 100000}
	raw, _ = json.Marshal(cfg)
	if err := caddy.Load(raw, true); err == nil || !strings.Contains(err.Error(), "max_filter_depth") {
		t.Fatalf("max_filter_depth 100000 loaded: %v", err)
	}
}
