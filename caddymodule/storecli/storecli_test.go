package storecli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/ssogate/ssogate/store/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// run runs `store args...` as the CLI would, with $SSOGATE_DATABASE_URL
// unset.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	t.Setenv("SSOGATE_DATABASE_URL", "")
	root := &cobra.Command{Use: "store"}
	storeCommands(root)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// --postgres-dsn-file keeps the DSN out of the process list: it reads
// the DSN from a file (a final line break is not part of it), and
// refuses an empty file or both ways at once.
func TestPostgresDSNFile(t *testing.T) {
	dsn, schema := pgtest.Schema(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "dsn")
	if err := os.WriteFile(file, []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "export.jsonl")
	if msg, err := run(t, "export", "--storage", "postgres", "--postgres-dsn-file", file, "--postgres-schema", schema, "-o", out); err != nil {
		t.Fatalf("export with --postgres-dsn-file: %v\n%s", err, msg)
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatalf("no export written: %v", err)
	}

	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"export", "--storage", "postgres", "--postgres-dsn-file", empty}, "is empty"},
		{[]string{"export", "--storage", "postgres", "--postgres-dsn-file", filepath.Join(dir, "missing")}, "no such file"},
		{[]string{"export", "--storage", "postgres", "--postgres-dsn-file", file, "--postgres-dsn", dsn}, "give one"},
		{[]string{"export", "--path", dir, "--postgres-dsn-file", file}, "go with --storage postgres"},
		{[]string{"export", "--online", "--postgres-dsn-file", file}, "--postgres-dsn-file opens a store directly"},
		{[]string{"export", "--storage", "postgres"}, "$SSOGATE_DATABASE_URL or with --postgres-dsn-file"},
	} {
		msg, err := run(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want an error with %q", strings.Join(c.args, " "), err, c.want)
		}
		if strings.Contains(msg+err.Error(), dsn) {
			t.Errorf("%s: the output shows the DSN", strings.Join(c.args, " "))
		}
	}

	// As in the sso.storage.postgres module: a database over the network
	// needs a verified certificate, or the explicit flag (then the
	// command goes on to connect, which fails here: nothing answers).
	remote := filepath.Join(dir, "remote")
	if err := os.WriteFile(remote, []byte("postgres://gw:Sw0rdf1sh@192.0.2.1/sso?connect_timeout=1"), 0o600); err != nil {
		t.Fatal(err)
	}
	msg, err := run(t, "export", "--storage", "postgres", "--postgres-dsn-file", remote, "-o", filepath.Join(dir, "r.jsonl"))
	if err == nil || !strings.Contains(err.Error(), "host 192.0.2.1:5432") || !strings.Contains(err.Error(), "--postgres-insecure-plaintext") {
		t.Errorf("remote database in plaintext: %v %s", err, msg)
	}
	msg, err = run(t, "export", "--storage", "postgres", "--postgres-dsn-file", remote, "--postgres-insecure-plaintext", "-o", filepath.Join(dir, "r.jsonl"))
	if err == nil || strings.Contains(err.Error(), "insecure") || strings.Contains(err.Error()+msg, "Sw0rdf1sh") {
		t.Errorf("remote database with --postgres-insecure-plaintext: %v %s", err, msg)
	}

	// The help steers away from the flag that ps shows.
	help, _ := run(t, "export", "--help")
	if !strings.Contains(help, "visible in the process list: prefer $SSOGATE_DATABASE_URL or --postgres-dsn-file") {
		t.Errorf("export --help does not prefer the variable or the file:\n%s", help)
	}
}
