package caddymodule_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/ssogate/ssogate/examples/demo"
)

// loadGatewayConfig reloads Caddy with the demo config, the sso_gateway
// handler replaced by gw and the reverse proxy setting extra request
// headers from placeholders.
func loadGatewayConfig(t *testing.T, gw map[string]any, proxyHeaders map[string][]string) {
	t.Helper()
	var cfg map[string]any
	if err := json.Unmarshal(env.CaddyConfig(), &cfg); err != nil {
		t.Fatal(err)
	}
	srv := cfg["apps"].(map[string]any)["http"].(map[string]any)["servers"].(map[string]any)["gateway"].(map[string]any)
	handle := srv["routes"].([]any)[0].(map[string]any)["handle"].([]any)
	handle[0] = gw
	if proxyHeaders != nil {
		handle[1].(map[string]any)["headers"] = map[string]any{"request": map[string]any{"set": proxyHeaders}}
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	loadConfig(t, raw)
}

// TestReloadKeepsSessionsAndAppliesNewConfig reloads Caddy with another
// handler configuration while a session exists: the store handle is shared
// across the reload (no fight over Badger's directory lock), the session
// survives, and the new header preset, public paths and placeholders apply.
func TestReloadKeepsSessionsAndAppliesNewConfig(t *testing.T) {
	b := newBrowser(t)
	b.signIn(demo.AliceEmail, demo.DefaultPassword, "")
	before := signedIn(t, b)

	loadGatewayConfig(t, map[string]any{
		"handler":       "sso_gateway",
		"header_preset": "oauth2-proxy",
		"public_paths":  []string{"/public/*"},
	}, map[string][]string{
		"X-Forwarded-Placeholder-Id":    {"{http.auth.user.id}"},
		"X-Forwarded-Placeholder-Email": {"{http.auth.user.email}"},
	})
	t.Cleanup(func() { loadGatewayConfig(t, map[string]any{"handler": "sso_gateway"}, nil) })

	status, h := b.whoami()
	if status != http.StatusOK {
		t.Fatalf("session lost across reload: %d", status)
	}
	// oauth2-proxy's meanings: X-Forwarded-User is the IdP's identifier of
	// the user, not ssogate's id, and X-Auth-Request-* carry the same.
	if before["X-Sso-Subject"] == "" || before["X-Sso-Subject"] == before["X-Sso-User-Id"] {
		t.Errorf("X-SSO-Subject is not the IdP's identifier: %v", before)
	}
	if h["X-Forwarded-Email"] != demo.AliceEmail || h["X-Forwarded-User"] != before["X-Sso-Subject"] ||
		h["X-Forwarded-Preferred-Username"] != demo.AliceEmail || h["X-Sso-User-Id"] != before["X-Sso-User-Id"] {
		t.Errorf("oauth2-proxy headers wrong: %v", h)
	}
	for name, want := range map[string]string{
		"X-Auth-Request-User": before["X-Sso-Subject"], "X-Auth-Request-Email": demo.AliceEmail,
		"X-Auth-Request-Preferred-Username": demo.AliceEmail, "X-Auth-Request-Groups": h["X-Forwarded-Groups"],
	} {
		if h[name] != want || want == "" {
			t.Errorf("%s = %q, want %q: %v", name, h[name], want, h)
		}
	}
	if _, ok := h["X-Sso-Email"]; ok {
		t.Errorf("default-preset header still sent: %v", h)
	}
	if h["X-Forwarded-Placeholder-Id"] != before["X-Sso-User-Id"] || h["X-Forwarded-Placeholder-Email"] != demo.AliceEmail {
		t.Errorf("placeholders not set: %v", h)
	}

	// A public path needs no session, and still gets no client-supplied
	// identity, whatever the preset.
	anon := newBrowser(t)
	req, _ := http.NewRequest(http.MethodGet, env.GatewayURL+"/public/info", nil)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Forwarded-Email", "mallory@evil.example")
	req.Header.Set("X-SSO-Email", "mallory@evil.example")
	req.Header.Set("X-Forwarded-User", "mallory")
	req.Header.Set("X-Auth-Request-User", "mallory")
	req.Header.Set("X-Auth-Request-Email", "mallory@evil.example")
	p := anon.do(req)
	if p.status != http.StatusOK {
		t.Fatalf("public path: %d", p.status)
	}
	var out struct {
		Headers map[string]string `json:"headers"`
	}
	if err := json.Unmarshal([]byte(p.body), &out); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"X-Forwarded-Email", "X-Sso-Email", "X-Forwarded-User", "X-Auth-Request-User", "X-Auth-Request-Email"} {
		if v, ok := out.Headers[name]; ok {
			t.Errorf("%s reached the upstream on a public path: %q", name, v)
		}
	}
	if s, _ := anon.whoami(); s != http.StatusUnauthorized {
		t.Errorf("non-public path without session: %d", s)
	}
}
