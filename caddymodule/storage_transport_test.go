package caddymodule

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Each placeholder of the DSN must expand to something: an unset
// password variable must not become "no password".
func TestPostgresDSNPlaceholders(t *testing.T) {
	t.Setenv("SSOGATE_T_PW", "s3cret")
	t.Setenv("SSOGATE_T_EMPTY", "")
	t.Setenv("SSOGATE_T_BRACES", "pa{ss}")
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ raw, want, err string }{
		{"postgres://gw:{env.SSOGATE_T_PW}@db/sso", "postgres://gw:s3cret@db/sso", ""},
		{"postgres://gw:{env.SSOGATE_T_BRACES}@db/sso", "postgres://gw:pa{ss}@db/sso", ""},
		{"postgres://gw:{env.SSOGATE_T_UNSET}@db/sso", "", "dsn is empty where {env.SSOGATE_T_UNSET} stands"},
		{"postgres://gw:{env.SSOGATE_T_EMPTY}@db/sso", "", "dsn is empty where {env.SSOGATE_T_EMPTY} stands"},
		{"postgres://{env.SSOGATE_T_PW}:{env.SSOGATE_T_UNSET}@db/sso", "", "{env.SSOGATE_T_UNSET}"},
		{"postgres://gw:{file." + empty + "}@db/sso", "", "dsn is empty where {file." + empty + "} stands"},
		{"{env.SSOGATE_T_UNSET}", "", "dsn is empty where {env.SSOGATE_T_UNSET} stands"},
		{"postgres://gw:{http.request.host}@db/sso", "", "cannot be expanded"},
		{"postgres://gw:pa{x}ss@db/sso", "", "cannot be expanded"},
	} {
		got, err := expandDSN(c.raw)
		if c.err == "" {
			if err != nil || got != c.want {
				t.Errorf("%s: %q, %v; want %q", c.raw, got, err, c.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: %q, %v; want an error with %q", c.raw, got, err, c.err)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "pa{x}ss") {
			t.Errorf("%s: the error shows the DSN: %v", c.raw, err)
		}
	}
}

// insecure_plaintext is a flag: no argument in the Caddyfile, a bool in
// JSON.
func TestPostgresInsecurePlaintextCaddyfile(t *testing.T) {
	const pre = "{\n sso {\n base_url https://app.example.com\n "
	cfg, err := adapt(t, pre+"storage postgres {\n dsn {env.SSOGATE_DATABASE_URL}\n insecure_plaintext\n }\n }\n}\n:80\n")
	if err != nil {
		t.Fatal(err)
	}
	st := cfg["apps"].(map[string]any)["sso"].(map[string]any)["storage"].(map[string]any)
	if st["insecure_plaintext"] != true {
		t.Fatalf("storage adapts to %v, want insecure_plaintext true", st)
	}
	if _, err := adapt(t, pre+"storage postgres {\n dsn x\n insecure_plaintext yes\n }\n }\n}\n:80\n"); err == nil {
		t.Fatal("insecure_plaintext with an argument adapted")
	}
	cfg, err = adapt(t, pre+"storage postgres {\n dsn {env.SSOGATE_DATABASE_URL}\n }\n }\n}\n:80\n")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cfg["apps"].(map[string]any)["sso"].(map[string]any)["storage"].(map[string]any)["insecure_plaintext"]; ok {
		t.Fatal("insecure_plaintext set without being asked for")
	}
}
