package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// postgresStorage makes cfg's sso app use PostgreSQL with these options.
func postgresStorage(cfg map[string]any, opts map[string]any) {
	sso := ssoApp(cfg)
	delete(sso, "storage_path")
	opts["module"] = "postgres"
	sso["storage"] = opts
}

// A DSN that would reach the database over the network without a
// verified certificate is refused when the config loads, unless the
// operator says insecure_plaintext; the refusal never shows the DSN.
func TestPostgresStorageTransportRefused(t *testing.T) {
	const secret = "Sw0rdf1sh-secret"
	cfg := demoConfig(t)
	postgresStorage(cfg, map[string]any{"dsn": "postgres://gw:" + secret + "@db.example.com/sso"})
	msg := wantRefused(t, cfg, "host db.example.com:5432", "plaintext possible", "verify-full", "insecure_plaintext")
	if strings.Contains(msg, secret) {
		t.Errorf("the refusal shows the password: %s", msg)
	}
	cfg = demoConfig(t)
	postgresStorage(cfg, map[string]any{"dsn": "postgres://gw:" + secret + "@db.example.com/sso?sslmode=require"})
	wantRefused(t, cfg, "host db.example.com:5432", "without a certificate check")

	// Allowed: the config gets as far as connecting (to an address where
	// nothing answers), which fails for that reason alone.
	cfg = demoConfig(t)
	postgresStorage(cfg, map[string]any{
		"dsn":                "postgres://gw:" + secret + "@192.0.2.1:5432/sso?connect_timeout=1",
		"insecure_plaintext": true,
		"connect_timeout":    "1s",
	})
	msg = wantRefused(t, cfg, "postgres")
	t.Logf("%s", msg)
	if strings.Contains(msg, "insecure_plaintext") || strings.Contains(msg, "sslmode") || strings.Contains(msg, secret) {
		t.Errorf("with insecure_plaintext: %s", msg)
	}
	assertStillGuarded(t)
}

// A placeholder of the DSN that expands to nothing stops the config: an
// unset password variable would otherwise let the driver fall back to
// PGPASSWORD, ~/.pgpass or trust authentication.
func TestPostgresStorageEmptyPlaceholderRefused(t *testing.T) {
	os.Unsetenv("SSOGATE_E2E_UNSET_PW")
	cfg := demoConfig(t)
	postgresStorage(cfg, map[string]any{"dsn": "postgres://gw:{env.SSOGATE_E2E_UNSET_PW}@127.0.0.1/sso"})
	wantRefused(t, cfg, "storage postgres dsn is empty where {env.SSOGATE_E2E_UNSET_PW} stands")
}

// The storage logs where it connects and how (host and sslmode), never
// the user, the password or the database name; nor does the connection
// error.
func TestPostgresStorageLogsHostAndSSLMode(t *testing.T) {
	const secret = "Sw0rdf1sh-secret"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	logPath := filepath.Join(t.TempDir(), "log.json")
	cfg := demoConfig(t)
	cfg["logging"].(map[string]any)["logs"].(map[string]any)["storage_watch"] = map[string]any{
		"writer":  map[string]any{"output": "file", "filename": logPath},
		"encoder": map[string]any{"format": "json"},
		"level":   "DEBUG",
		"include": []string{"sso"},
	}
	postgresStorage(cfg, map[string]any{
		"dsn": fmt.Sprintf("host=127.0.0.1 port=%d user=u%s password=p%s dbname=d%s connect_timeout=5", port, secret, secret, secret),
	})
	msg := wantRefused(t, cfg, fmt.Sprintf("127.0.0.1:%d", port))
	t.Logf("%s", msg)
	if strings.Contains(msg, secret) {
		t.Errorf("the connection error shows user, password or database: %s", msg)
	}
	raw, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), secret) {
		t.Errorf("the log shows user, password or database:\n%s", raw)
	}
	found := false
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var e struct {
			Logger, Msg string
			Hosts       []string
			SSLMode     string `json:"sslmode"`
		}
		if json.Unmarshal([]byte(line), &e) != nil || e.Msg != "postgres storage" {
			continue
		}
		found = true
		if e.Logger != "sso.storage.postgres" || len(e.Hosts) != 1 || e.Hosts[0] != fmt.Sprintf("127.0.0.1:%d", port) || !strings.HasPrefix(e.SSLMode, "disable, allow or prefer") {
			t.Errorf("log line %s", line)
		}
	}
	if !found {
		t.Errorf("no log line says where the storage connects:\n%s", raw)
	}
}
