package caddymodule

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

func adapt(t *testing.T, src string) (map[string]any, error) {
	t.Helper()
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		return nil, err
	}
	var cfg map[string]any
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg, nil
}

func TestCaddyfileExampleAdapts(t *testing.T) {
	src, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSOGATE_SESSION_KEY", "an-example-session-key-of-32-characters!")
	cfg, err := adapt(t, string(src))
	if err != nil {
		t.Fatalf("adapting Caddyfile.example: %v", err)
	}
	apps := cfg["apps"].(map[string]any)
	sso, ok := apps["sso"].(map[string]any)
	if !ok {
		t.Fatalf("no sso app in %v", apps)
	}
	if sso["base_url"] != "https://app.example.com" || sso["storage_path"] != "/var/lib/ssogate" ||
		sso["session_lifetime"] != float64(8*3600e9) {
		t.Errorf("sso app = %v", sso)
	}
	raw, _ := json.Marshal(apps["http"])
	for _, want := range []string{`"handler":"sso_gateway"`, `"prefix":"/sso"`, `"public_paths":["/healthz","/favicon.ico","/static/*"]`, `"header_preset":"default"`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("adapted http app lacks %s:\n%s", want, raw)
		}
	}
	// sso_gateway must come before reverse_proxy in the handler chain.
	if i, j := strings.Index(string(raw), "sso_gateway"), strings.Index(string(raw), "reverse_proxy"); i < 0 || j < 0 || i > j {
		t.Errorf("sso_gateway is not ordered before reverse_proxy:\n%s", raw)
	}
}

func TestGatewayCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`sso_gateway {
		prefix /auth
		public_paths /a /b/*
		protected_paths /app/*
		header_preset oauth2-proxy
		header email X-Mail
		header org -
		allow_bypass
	}`)
	var g Gateway
	if err := g.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	if g.Prefix != "/auth" || len(g.PublicPaths) != 2 || g.ProtectedPaths[0] != "/app/*" || g.HeaderPreset != "oauth2-proxy" || !g.AllowBypass {
		t.Errorf("parsed %+v", g)
	}
	h, ok := resolveHeaders(g.HeaderPreset, g.Headers)
	if !ok || h.Email != "X-Mail" || h.Org != "" || h.Subject != "X-Forwarded-User" || h.UserID != "X-Sso-User-Id" {
		t.Errorf("headers %+v", h)
	}
	// An overridden field goes out under its new name only; the others
	// keep their X-Auth-Request-* mirror.
	if m := h.mirror; m[2] != "" || m[7] != "X-Auth-Request-User" || m[1] != "X-Auth-Request-Preferred-Username" {
		t.Errorf("mirrors %q", m)
	}
	for _, bad := range []string{
		"sso_gateway {\n bogus 1\n}",
		"sso_gateway {\n header nope X-A\n}",
		"sso_gateway {\n header_preset\n}",
		"sso_gateway {\n public_paths\n}",
		"sso_gateway /a /b",
		"sso_gateway /sso",
		"sso_gateway {\n allow_bypass yes\n}",
	} {
		var g Gateway
		if err := g.UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestGlobalOptionErrors(t *testing.T) {
	for _, bad := range []string{
		"{\n sso {\n bogus x\n }\n}\n:80\n",
		"{\n sso {\n session_lifetime forever\n }\n}\n:80\n",
		"{\n sso extra\n}\n:80\n",
	} {
		if _, err := adapt(t, bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

// The storage option adapts to a module of the sso.storage namespace,
// and its slips are refused by the adapter.
func TestStorageCaddyfile(t *testing.T) {
	for src, want := range map[string]map[string]any{
		"storage postgres {\n dsn {env.SSOGATE_DATABASE_URL}\n schema gw1\n max_conns 20\n connect_timeout 5s\n }": {
			"module": "postgres", "dsn": "{env.SSOGATE_DATABASE_URL}", "schema": "gw1", "max_conns": float64(20), "connect_timeout": float64(5e9)},
		"storage badger /var/lib/ssogate":              {"module": "badger", "path": "/var/lib/ssogate"},
		"storage badger {\n path /var/lib/ssogate\n }": {"module": "badger", "path": "/var/lib/ssogate"},
	} {
		cfg, err := adapt(t, "{\n sso {\n base_url https://app.example.com\n "+src+"\n }\n}\n:80\n")
		if err != nil {
			t.Errorf("%q: %v", src, err)
			continue
		}
		got := cfg["apps"].(map[string]any)["sso"].(map[string]any)["storage"]
		gotJSON, _ := json.Marshal(got)
		wantJSON, _ := json.Marshal(want)
		if string(gotJSON) != string(wantJSON) {
			t.Errorf("%q adapts to %s, want %s", src, gotJSON, wantJSON)
		}
	}
	for _, bad := range []string{
		"storage",
		"storage redis",
		"storage postgres extra",
		"storage postgres {\n password x\n }",
		"storage postgres {\n max_conns -1\n }",
		"storage postgres {\n dsn\n }",
		"storage badger /a /b",
		"storage badger /a\n storage badger /b",
	} {
		if _, err := adapt(t, "{\n sso {\n "+bad+"\n }\n}\n:80\n"); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestSafeReturn(t *testing.T) {
	cases := map[string]string{
		"/":                    "/",
		"/app/page?x=1":        "/app/page?x=1",
		"":                     "",
		"https://evil.example": "",
		"//evil.example/x":     "",
		"/\\evil.example":      "",
		"javascript:alert(1)":  "",
		"evil.example":         "",
		"/a\r\nSet-Cookie: x":  "",
		"http:/evil.example":   "",
	}
	for in, want := range cases {
		if got := safeReturn(in); got != want {
			t.Errorf("safeReturn(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseBaseURL(t *testing.T) {
	for _, ok := range []string{"https://a.example", "https://a.example:8443/", "http://127.0.0.1:8080"} {
		if _, err := parseBaseURL(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"a.example", "ftp://a.example", "https://a.example/path", "https://a.example/?q", "https://u@a.example", "https://:443", "https://a.example:99999", "https://a.example:0"} {
		if _, err := parseBaseURL(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}
