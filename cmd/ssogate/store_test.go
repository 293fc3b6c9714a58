//go:build unix

package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
	"github.com/ssogate/ssogate/store/pgtest"
)

// storeCLI runs `ssogate store ...` and returns its standard output and
// error, and whether it succeeded.
func storeCLI(t *testing.T, g *crashGateway, args ...string) (string, string, bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"store"}, args...)...)
	cmd.Env = append(os.Environ(), runAsSSOGate+"=1", "HOME="+g.homeDir, "XDG_DATA_HOME="+g.homeDir, "XDG_CONFIG_HOME="+g.homeDir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err == nil
}

// TestStoreBackupAndExportWhileServing takes an online backup and an
// online export of a gateway while an IdP provisions users into it, then
// brings each copy up in a new gateway process: the restored backup and
// the imported export both serve the organization, with every user
// acknowledged before the copy began and the same SCIM token.
func TestStoreBackupAndExportWhileServing(t *testing.T) {
	gw := newCrashGateway(t)
	gw.writeCaddyfile()
	gw.start()
	token := gw.createSCIMOrg()
	// The operator vouches for the organization's domain: an import keeps
	// that only when told the file is the operator's own.
	verify, err := http.Post(gw.adminURL+"/sso/orgs/"+crashOrg+"/domains/"+crashDomain+"/verify", "application/json", strings.NewReader(`{"force":true}`))
	if err != nil {
		t.Fatal(err)
	}
	verify.Body.Close()
	if verify.StatusCode != http.StatusOK {
		t.Fatalf("verifying %s: %s", crashDomain, verify.Status)
	}
	scim := &scimConn{base: gw.gatewayURL + "/sso/scim/" + crashOrg + "/v2", token: token, client: &http.Client{Timeout: 10 * time.Second}}

	// An IdP provisions users until told to stop.
	var acked atomic.Int64
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var failure atomic.Value
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				r := &userRecord{userName: fmt.Sprintf("w%d-%d@%s", w, i, crashDomain), externalID: fmt.Sprintf("x-%d-%d", w, i)}
				status, _, err := scim.do(ctx, http.MethodPost, "/Users", userBody(r, "User"))
				if ctx.Err() != nil {
					return
				}
				if err != nil || status != http.StatusCreated {
					failure.Store(fmt.Sprintf("provisioning: %d %v", status, err))
					return
				}
				acked.Add(1)
			}
		}()
	}
	for acked.Load() < 20 && failure.Load() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	beforeBackup := acked.Load()
	backup := filepath.Join(gw.dir, "ssogate.backup")
	if _, stderr, ok := storeCLI(t, gw, "backup", "-o", backup, "--address", gw.admin); !ok {
		t.Fatalf("store backup: %s", stderr)
	}
	beforeExport := acked.Load()
	export := filepath.Join(gw.dir, "export.jsonl")
	if _, stderr, ok := storeCLI(t, gw, "export", "--online", "--with-secrets", "-o", export, "--address", gw.admin); !ok {
		t.Fatalf("store export --online: %s", stderr)
	}
	// Without --with-secrets the org's SCIM token hash stays behind, and
	// the route refuses what it does not know.
	plain, stderr, ok := storeCLI(t, gw, "export", "--online", "--org", crashOrg, "--address", gw.admin)
	if !ok || !strings.Contains(plain, `"type":"org"`) || strings.Contains(plain, "scim_token_hash") {
		t.Errorf("online export without secrets: ok=%v, %s\n%.300s", ok, stderr, plain)
	}
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{http.MethodPost, "/sso/store/export", http.StatusMethodNotAllowed},
		{http.MethodGet, "/sso/store/export?with_secrets=maybe", http.StatusBadRequest},
		{http.MethodGet, "/sso/store/export?orgs=" + crashOrg, http.StatusBadRequest},
		{http.MethodDelete, "/sso/store/backup", http.StatusMethodNotAllowed},
	} {
		req, _ := http.NewRequest(c.method, gw.adminURL+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s %s: %s, want %d", c.method, c.path, resp.Status, c.status)
		}
	}
	// The store is locked by the running gateway: an offline export says
	// what to do instead.
	if _, stderr, ok := storeCLI(t, gw, "export", "--path", gw.storage); ok || !strings.Contains(stderr, "--online") {
		t.Errorf("offline export of a running gateway's store: ok=%v, %s", ok, stderr)
	}
	// An unknown organization gets an answer, not a cut stream.
	if _, stderr, ok := storeCLI(t, gw, "export", "--online", "--org", "nope", "--address", gw.admin); ok || !strings.Contains(stderr, "404") {
		t.Errorf("online export of an unknown org: ok=%v, %s", ok, stderr)
	}
	// The backup is in the gateway-wide audit trail, which the export of
	// everything carries.
	if b, err := os.ReadFile(export); err != nil || !strings.Contains(string(b), `"action":"store.backup","outcome":"success"`) {
		t.Errorf("no store.backup audit event in the export (%v)", err)
	}
	stop()
	wg.Wait()
	if f := failure.Load(); f != nil {
		t.Fatal(f)
	}
	gw.stopGracefully()
	for _, f := range []string{backup, export} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", f, err, fi.Mode())
		}
	}

	// The backup restored into a new directory, served by a new process.
	restored := newCrashGateway(t)
	restored.writeCaddyfile()
	if _, stderr, ok := storeCLI(t, restored, "restore", backup, "--path", restored.storage); !ok {
		t.Fatalf("store restore: %s", stderr)
	}
	// Never over a store.
	if _, stderr, ok := storeCLI(t, restored, "restore", backup, "--path", restored.storage); ok || !strings.Contains(stderr, "not empty") {
		t.Errorf("restore over a store: ok=%v, %s", ok, stderr)
	}
	restored.start()
	n := countUsers(t, &scimConn{base: restored.gatewayURL + "/sso/scim/" + crashOrg + "/v2", token: token, client: scim.client})
	if int64(n) < beforeBackup {
		t.Errorf("restored backup has %d users, %d were acknowledged before it began", n, beforeBackup)
	}
	t.Logf("backup: %d users acknowledged before it, %d in it", beforeBackup, n)
	restored.stopGracefully()

	// The export imported into a fresh store, served by a new process.
	imported := newCrashGateway(t)
	imported.writeCaddyfile()
	// Asking for the gateway's keys of a file of one organization is
	// refused.
	plainFile := filepath.Join(gw.dir, "plain.jsonl")
	if err := os.WriteFile(plainFile, []byte(plain), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, ok := storeCLI(t, imported, "import", plainFile, "--path", imported.storage, "--with-secrets"); ok || !strings.Contains(stderr, "--with-secrets") {
		t.Errorf("import --with-secrets of a one-org file without secrets: ok=%v, %s", ok, stderr)
	}
	// Without flags: the organization's records, its domain pending and
	// named with the commands that verify it again, the gateway's keys
	// and gateway-wide audit left out and named.
	_, stderr, ok = storeCLI(t, imported, "import", export, "--path", imported.storage)
	if !ok {
		t.Fatalf("store import: %s", stderr)
	}
	for _, want := range []string{
		"org verify-domain " + crashOrg + " " + crashDomain, "--trust-domains",
		"Gateway secrets in the file not imported (--with-secrets imports them): saml-sp-keypair",
		"Gateway-wide audit events in the file not imported",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("store import's summary lacks %q:\n%s", want, stderr)
		}
	}
	// A dry run says what it would write, and writes nothing: the import
	// after it is refused as before.
	if _, stderr, ok := storeCLI(t, imported, "import", export, "--path", imported.storage, "--dry-run", "--replace", "--with-secrets"); !ok ||
		!strings.Contains(stderr, `"would_import"`) || !strings.Contains(stderr, `"replaced":["`+crashOrg+`"]`) || !strings.Contains(stderr, `"secrets":["saml-sp-keypair"`) {
		t.Errorf("import --dry-run: ok=%v, %s", ok, stderr)
	}
	if _, stderr, ok := storeCLI(t, imported, "import", export, "--path", imported.storage); ok || !strings.Contains(stderr, "--replace") {
		t.Errorf("second import without --replace: ok=%v, %s", ok, stderr)
	}
	if _, stderr, ok := storeCLI(t, imported, "import", export, "--path", imported.storage, "--replace"); !ok {
		t.Errorf("import --replace: %s", stderr)
	}
	imported.start()
	n = countUsers(t, &scimConn{base: imported.gatewayURL + "/sso/scim/" + crashOrg + "/v2", token: token, client: scim.client})
	if int64(n) < beforeExport {
		t.Errorf("imported export has %d users, %d were acknowledged before it began", n, beforeExport)
	}
	t.Logf("export: %d users acknowledged before it, %d in it", beforeExport, n)
	imported.stopGracefully()

	// The same export moves the deployment to PostgreSQL: imported with
	// the DSN from the environment (as the README does it), served by a
	// gateway whose storage is that database.
	dsn, schema := pgtest.Schema(t)
	onPG := newCrashGateway(t)
	onPG.writeCaddyfile()
	t.Setenv("SSOGATE_TEST_EXPORT_DSN", dsn)
	t.Setenv("SSOGATE_DATABASE_URL", dsn)
	stdout, stderr, ok := storeCLI(t, onPG, "import", export, "--storage", "postgres", "--postgres-schema", schema,
		"--with-secrets", "--with-gateway-audit", "--trust-domains")
	if !ok {
		t.Fatalf("store import into PostgreSQL: %s", stderr)
	}
	if strings.Contains(stderr, "pending") || strings.Contains(stderr, "not imported") || !strings.Contains(stderr, `"secrets":["saml-sp-keypair"`) {
		t.Errorf("a move of the whole deployment left something behind:\n%s", stderr)
	}
	if strings.Contains(stdout+stderr, dsn) {
		t.Errorf("store import printed the DSN:\n%s%s", stdout, stderr)
	}
	_, port, _ := strings.Cut(onPG.gateway, ":")
	host := onPG.host()
	cfg := fmt.Sprintf(`{
	admin %[1]s {
		origins %[1]s
	}
	persist_config off
	grace_period 1s
	sso {
		base_url %s
		storage postgres {
			dsn {env.SSOGATE_TEST_EXPORT_DSN}
			schema %s
		}
	}
}

http://%s:%s {
	bind %s
	sso_gateway
	respond "upstream"
}
`, onPG.admin, onPG.gatewayURL, schema, host, port, host)
	if err := os.WriteFile(onPG.caddyfile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	onPG.start()
	t.Cleanup(onPG.stopGracefully)
	pgConn := &scimConn{base: onPG.gatewayURL + "/sso/scim/" + crashOrg + "/v2", token: token, client: scim.client}
	if m := countUsers(t, pgConn); m != n {
		t.Errorf("the gateway on PostgreSQL has %d users, the export %d", m, n)
	}
	// And it is a working store: provisioning goes on where it stopped.
	r := &userRecord{userName: "after-move@" + crashDomain, externalID: "after-move"}
	if status, _, err := pgConn.do(context.Background(), http.MethodPost, "/Users", userBody(r, "After")); err != nil || status != http.StatusCreated {
		t.Errorf("provisioning on PostgreSQL: %d %v", status, err)
	}
	if logs := readFile(onPG.logs[0]); strings.Contains(logs, dsn) {
		t.Error("the gateway logged the DSN")
	}
	// An online backup is Badger's: the PostgreSQL gateway says so.
	if _, stderr, ok := storeCLI(t, onPG, "backup", "-o", filepath.Join(onPG.dir, "pg.backup"), "--address", onPG.admin); ok || !strings.Contains(stderr, "501") {
		t.Errorf("backup of a PostgreSQL gateway: ok=%v, %s", ok, stderr)
	}
}

// TestStoreCommandHelpAndRefusals runs `ssogate store` as an operator
// would get it wrong: the help names the binary and the commands, an
// unknown sub-command and contradictory flags fail with the reason, and
// nothing is written on the way.
func TestStoreCommandHelpAndRefusals(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "ssogate")
	if err := os.Symlink(self, link); err != nil {
		t.Fatal(err)
	}
	t.Setenv(runAsSSOGate, "1")
	help := run(t, link, "store", "--help")
	for _, want := range []string{"ssogate store export --path", "ssogate store backup -o", "restore", "import"} {
		if !strings.Contains(help, want) {
			t.Errorf("store --help lacks %q:\n%s", want, help)
		}
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	some := filepath.Join(dir, "some.jsonl")
	if err := os.WriteFile(some, []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"store", "bogus"}, `unknown command "bogus"`},
		{[]string{"store", "export", "-o", out}, "--path"},
		{[]string{"store", "export", "--path", filepath.Join(dir, "typo"), "-o", out}, "not a Badger store"},
		{[]string{"store", "export", "--storage", "postgres", "--path", dir, "-o", out}, "--path goes with --storage badger"},
		{[]string{"store", "export", "--online", "--path", dir, "-o", out}, "--online"},
		{[]string{"store", "export", "--storage", "sqlite", "-o", out}, "badger or postgres"},
		{[]string{"store", "backup", "-o", "-"}, "goes to a file"},
		{[]string{"store", "import", filepath.Join(dir, "missing.jsonl"), "--path", filepath.Join(dir, "db")}, "no such file"},
		{[]string{"store", "import", some, "--path", filepath.Join(dir, "typo"), "--dry-run"}, "not a Badger store"},
		// A database that is not there: the error says so without the
		// DSN's password.
		{[]string{"store", "export", "--storage", "postgres", "--postgres-dsn", "postgres://u:SECRETPW@127.0.0.1:1/db?connect_timeout=5", "-o", out}, "connect"},
	} {
		cmd := exec.Command(link, c.args...)
		cmd.Env = append(os.Environ(), "SSOGATE_DATABASE_URL=")
		b, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(b), c.want) {
			t.Errorf("%s: err=%v, output %q; want a failure naming %q", strings.Join(c.args, " "), err, b, c.want)
		}
		if strings.Contains(string(b), "SECRETPW") {
			t.Errorf("%s printed the DSN's password: %s", strings.Join(c.args, " "), b)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a refused export left %s (%v)", out, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "typo")); !os.IsNotExist(err) {
		t.Errorf("an export from a mistyped --path created it (%v)", err)
	}
}

// TestStoreImportReadsItsFileOnce imports from a named pipe, which gives
// its content once: import's two passes read the private copy the command
// made, never the file named twice (which may change between the reads).
func TestStoreImportReadsItsFileOnce(t *testing.T) {
	dir := t.TempDir()
	src, err := store.Open(filepath.Join(dir, "src"), store.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.CreateOrg(&store.Org{ID: "piped", Name: "Piped"}); err != nil {
		t.Fatal(err)
	}
	if err := src.AddDomain(&store.Domain{OrgID: "piped", Name: "piped.example", Token: "tok", Status: store.DomainVerified, VerifiedBy: "dns"}); err != nil {
		t.Fatal(err)
	}
	var export bytes.Buffer
	if _, err := src.Export(&export, store.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "export.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	wrote := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			wrote <- err
			return
		}
		_, err = f.Write(export.Bytes())
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		wrote <- err
	}()
	home := filepath.Join(dir, "home")
	dst := filepath.Join(dir, "dst")
	cmd := exec.Command(os.Args[0], "store", "import", fifo, "--path", dst)
	cmd.Env = append(os.Environ(), runAsSSOGate+"=1", "HOME="+home, "XDG_DATA_HOME="+home, "XDG_CONFIG_HOME="+home)
	out, err := cmd.CombinedOutput()
	if err != nil {
		// Unblock the writer if the command never opened the pipe.
		if r, oerr := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0); oerr == nil {
			r.Close()
		}
		t.Fatalf("store import from a pipe: %v\n%s", err, out)
	}
	if err := <-wrote; err != nil {
		t.Fatalf("writing the pipe: %v", err)
	}
	if !strings.Contains(string(out), `"created":["piped"]`) || !strings.Contains(string(out), "org verify-domain piped piped.example") {
		t.Errorf("summary:\n%s", out)
	}
	st, err := store.Open(dst, store.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d, err := st.GetDomain("piped", "piped.example")
	if err != nil || d.Status != store.DomainPending || d.Token != "tok" {
		t.Errorf("imported domain %+v (%v), want pending with its token", d, err)
	}
}
