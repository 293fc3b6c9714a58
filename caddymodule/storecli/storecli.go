// Package storecli is the `store` command of ssogate (and of any Caddy
// built with the module): portable export and import of organizations,
// which also move a deployment from one storage backend to another, and
// the online backup of the Badger store with its offline restore.
package storecli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/ssogate/ssogate/caddymodule/orgcli"
	"github.com/ssogate/ssogate/store"
)

// Command is the `store` command; the module's package registers it, as
// it does `org`.
func Command() caddycmd.Command {
	return caddycmd.Command{
		Name:      "store",
		Usage:     "export|import|backup|restore ...",
		Short:     "Exports, imports, backs up and restores the gateway's store",
		Long:      strings.ReplaceAll(longHelp, "BIN", orgcli.InvokedName()),
		CobraFunc: storeCommands,
	}
}

const longHelp = `
Copies the gateway's data (organizations, users, sessions, keys) out and
back in. Not to be confused with 'BIN storage', Caddy's own command for
its certificate storage.

export / import use a portable format (JSON Lines, described in the
README): organizations with their domains, users, groups, deprovisioned
identifiers and audit trails, and with --with-secrets also password
hashes, SCIM token hashes, pending set-password links and the gateway's
keys. Sessions are not exported: users sign in again. They open the store
directly, so the gateway must be stopped for a Badger store (Badger locks
its directory); export --online asks the running gateway instead.

  BIN store export --path /var/lib/ssogate -o all.jsonl --with-secrets
  BIN store export --online --org acme -o acme.jsonl
  BIN store import all.jsonl --storage postgres        # DSN from $SSOGATE_DATABASE_URL
  BIN store import all.jsonl --storage postgres --postgres-dsn-file /run/secrets/ssogate-dsn
  BIN store import acme.jsonl --path /var/lib/ssogate --replace
  BIN store import all.jsonl --storage postgres --with-secrets --with-gateway-audit --trust-domains

The PostgreSQL DSN holds a password: give it in $SSOGATE_DATABASE_URL or
a file (--postgres-dsn-file), not with --postgres-dsn, whose value other
users of the machine can read in the process list.

Import works on a private copy of the file, checks all of it before
writing anything, refuses an organization that exists unless --replace,
and writes each organization inactive until all its records are in.
What a file could claim beyond its organizations is imported only when
asked, for a file from your own deployment: --trust-domains keeps
domains verified (otherwise they arrive pending and are listed, to be
verified again), --with-secrets takes the gateway's keys,
--with-gateway-audit its gateway-wide audit trail. --dry-run prints what
would be written.

backup takes a consistent copy of the whole Badger store (sessions
included) from the running gateway through its admin API; restore loads
one into an empty directory, with the gateway stopped:

  BIN store backup -o ssogate-$(date +%F).backup
  BIN store restore ssogate-2026-11-30.backup --path /var/lib/ssogate.new
`

func storeCommands(cmd *cobra.Command) {
	cmd.Args = func(c *cobra.Command, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("unknown command %q for %q; see '%s store --help'", args[0], orgcli.InvokedName()+" store", orgcli.InvokedName())
		}
		return nil
	}
	cmd.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
	// As for `org`: the help names the binary as invoked, so that what it
	// shows can be pasted back.
	help := cmd.HelpFunc()
	cmd.SetHelpFunc(func(c *cobra.Command, args []string) {
		c.Root().Use = orgcli.InvokedName()
		help(c, args)
	})

	export := &cobra.Command{
		Use:   "export [--org <id>]... [--with-secrets] [-o <file>] (--path <dir> | --storage postgres ... | --online)",
		Short: "Writes organizations in the portable format",
		Args:  cobra.NoArgs,
		RunE:  runExport,
	}
	storageFlags(export)
	onlineFlags(export)
	export.Flags().Bool("online", false, "export from the running gateway through its admin API")
	export.Flags().StringArray("org", nil, "export only this organization (repeatable); default: all, gateway-wide records included")
	export.Flags().Bool("with-secrets", false, "include password hashes, SCIM token hashes, set-password links and the gateway's keys")
	export.Flags().StringP("output", "o", "-", "file to write ('-': standard output)")
	cmd.AddCommand(export)

	imp := &cobra.Command{
		Use:   "import <file> [--org <id>]... [--replace] [--trust-domains] [--with-secrets] [--with-gateway-audit] [--dry-run] (--path <dir> | --storage postgres ...)",
		Short: "Reads a portable export into a store (the gateway on a Badger store stopped)",
		Args:  cobra.ExactArgs(1),
		RunE:  runImport,
	}
	storageFlags(imp)
	imp.Flags().StringArray("org", nil, "import only this organization of the file (repeatable)")
	imp.Flags().Bool("replace", false, "delete organizations of the file that exist, and overwrite differing secrets")
	imp.Flags().Bool("trust-domains", false, "keep the file's verified domains verified (only for a file of your own deployment); default: imported pending")
	imp.Flags().Bool("with-secrets", false, "import the gateway's keys from an export of everything with secrets")
	imp.Flags().Bool("with-gateway-audit", false, "import the gateway-wide audit events of an export of everything")
	imp.Flags().Bool("dry-run", false, "check everything and print what would be written, writing nothing")
	cmd.AddCommand(imp)

	backup := &cobra.Command{
		Use:   "backup -o <file>",
		Short: "Takes an online backup of the running gateway's Badger store",
		Args:  cobra.NoArgs,
		RunE:  runBackup,
	}
	onlineFlags(backup)
	backup.Flags().StringP("output", "o", "", "file to write (required)")
	_ = backup.MarkFlagRequired("output")
	cmd.AddCommand(backup)

	restore := &cobra.Command{
		Use:   "restore <file> --path <dir>",
		Short: "Restores an online backup into an empty directory (offline)",
		Args:  cobra.ExactArgs(1),
		RunE:  runRestore,
	}
	restore.Flags().String("path", "", "directory to restore into; must not exist or be empty (required)")
	_ = restore.MarkFlagRequired("path")
	cmd.AddCommand(restore)
}

// storageFlags are the flags naming a store to open directly. They are
// explicit rather than read from the gateway's config: a migration has
// two stores, and the config names only one of them.
func storageFlags(c *cobra.Command) {
	f := c.Flags()
	f.String("storage", "badger", "storage backend: badger or postgres")
	f.String("path", "", "Badger directory (the sso app's storage_path)")
	f.String("postgres-dsn", "", "PostgreSQL connection string; visible in the process list: prefer $SSOGATE_DATABASE_URL or --postgres-dsn-file")
	f.String("postgres-dsn-file", "", "file holding the PostgreSQL connection string (default: $SSOGATE_DATABASE_URL); never printed")
	f.String("postgres-schema", "", "PostgreSQL schema (default: the backend's)")
	f.Bool("postgres-insecure-plaintext", false, "allow a database reached over the network without sslmode verify-full or verify-ca (a network you trust)")
}

func onlineFlags(c *cobra.Command) {
	f := c.Flags()
	f.String("address", "", "address of the administration listener, if different from config")
	f.StringP("config", "c", "", "configuration file to read the admin address from")
	f.StringP("adapter", "a", "", "name of config adapter to apply")
}

// openStore opens the store the storage flags name.
func openStore(c *cobra.Command) (*store.Store, error) {
	kind, _ := c.Flags().GetString("storage")
	path, _ := c.Flags().GetString("path")
	dsn, _ := c.Flags().GetString("postgres-dsn")
	dsnFile, _ := c.Flags().GetString("postgres-dsn-file")
	schema, _ := c.Flags().GetString("postgres-schema")
	log := caddy.Log().Named("store")
	switch kind {
	case "badger":
		if dsn != "" || dsnFile != "" || schema != "" || c.Flags().Changed("postgres-insecure-plaintext") {
			return nil, errors.New("--postgres-dsn, --postgres-dsn-file, --postgres-schema and --postgres-insecure-plaintext go with --storage postgres")
		}
		if path == "" {
			return nil, errors.New("give the Badger directory with --path (the sso app's storage_path)")
		}
		// Export and a dry run only read a store: a mistyped --path must
		// not become a new, empty one (Badger creates what it opens).
		if dryRun, _ := c.Flags().GetBool("dry-run"); c.Name() == "export" || dryRun {
			if _, err := os.Stat(filepath.Join(path, "MANIFEST")); err != nil {
				return nil, fmt.Errorf("--path %s: not a Badger store (no MANIFEST): %w", path, err)
			}
		}
		st, err := store.Open(path, store.Options{Logger: log, GCInterval: -1})
		if err != nil {
			if strings.Contains(err.Error(), "Cannot acquire directory lock") {
				return nil, fmt.Errorf("%w\n(a running gateway holds the store: stop it, or use --online for an export)", err)
			}
			return nil, err
		}
		return st, nil
	case "postgres":
		if path != "" {
			return nil, errors.New("--path goes with --storage badger")
		}
		if dsn != "" && dsnFile != "" {
			return nil, errors.New("--postgres-dsn and --postgres-dsn-file: give one")
		}
		if dsnFile != "" {
			var err error
			if dsn, err = readDSNFile(dsnFile); err != nil {
				return nil, err
			}
		}
		if dsn == "" {
			dsn = os.Getenv("SSOGATE_DATABASE_URL")
		}
		if dsn == "" {
			return nil, errors.New("give the database in $SSOGATE_DATABASE_URL or with --postgres-dsn-file")
		}
		// As the sso.storage.postgres module does: an export with secrets
		// must not cross a network in plaintext either.
		insecure, _ := c.Flags().GetBool("postgres-insecure-plaintext")
		if _, _, err := store.CheckPostgresTransport(dsn, insecure); errors.Is(err, store.ErrInsecureTransport) {
			return nil, fmt.Errorf("%w with --postgres-insecure-plaintext", err)
		} else if err != nil {
			return nil, err
		}
		return openPostgres(dsn, schema, log)
	default:
		return nil, fmt.Errorf("--storage %q: badger or postgres", kind)
	}
}

// maxDSNFile bounds what --postgres-dsn-file reads: a DSN is a line.
const maxDSNFile = 64 << 10

// readDSNFile reads a DSN from a file (a container or systemd secret, for
// instance), without its final line break. An empty file is an error: an
// empty DSN would let the driver pick a database from PG* variables.
func readDSNFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("--postgres-dsn-file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxDSNFile+1))
	if err != nil {
		return "", fmt.Errorf("--postgres-dsn-file %s: %w", path, err)
	}
	if len(b) > maxDSNFile {
		return "", fmt.Errorf("--postgres-dsn-file %s: larger than %d bytes, not a DSN", path, maxDSNFile)
	}
	dsn := strings.TrimRight(string(b), "\r\n")
	if strings.TrimSpace(dsn) == "" {
		return "", fmt.Errorf("--postgres-dsn-file %s is empty", path)
	}
	return dsn, nil
}

// openPostgres opens the store on PostgreSQL, with the defaults of the
// sso.storage.postgres module (schema ssogate), creating or migrating
// its tables as a gateway would.
func openPostgres(dsn, schema string, log *zap.Logger) (*store.Store, error) {
	if schema == "" {
		schema = "ssogate"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := store.OpenPostgres(ctx, store.PostgresOptions{DSN: dsn, Schema: schema, MaxConns: 4, Logger: log})
	if err != nil {
		return nil, err
	}
	return store.OpenBackend(b, store.Options{Logger: log, GCInterval: -1})
}

func runExport(c *cobra.Command, _ []string) error {
	orgs, _ := c.Flags().GetStringArray("org")
	secrets, _ := c.Flags().GetBool("with-secrets")
	out, _ := c.Flags().GetString("output")
	online, _ := c.Flags().GetBool("online")
	if online {
		for _, f := range []string{"storage", "path", "postgres-dsn", "postgres-dsn-file", "postgres-schema", "postgres-insecure-plaintext"} {
			if c.Flags().Changed(f) {
				return fmt.Errorf("--%s opens a store directly; --online asks the running gateway", f)
			}
		}
	}
	var stats store.ExportStats
	err := writeOutput(c, out, func(w io.Writer) error {
		if online {
			q := url.Values{"org": orgs}
			if secrets {
				q.Set("with_secrets", "true")
			}
			if err := adminGet(c, "/sso/store/export?"+q.Encode(), w); err != nil {
				return err
			}
			return nil
		}
		st, err := openStore(c)
		if err != nil {
			return err
		}
		stats, err = st.Export(w, store.ExportOptions{Orgs: orgs, WithSecrets: secrets})
		if err == nil {
			err = auditOffline(st, "store.export", map[string]string{"orgs": orgList(orgs), "with_secrets": strconv.FormatBool(secrets)})
		}
		if cerr := st.Close(); err == nil {
			err = cerr
		}
		return err
	}, func(f *os.File) error {
		// The file as written must read back whole: an online export cut
		// short lacks its end line.
		_, counts, err := store.CheckExport(f)
		stats = counts
		return err
	})
	if err != nil {
		return err
	}
	return printSummary(c, "exported", stats)
}

func runImport(c *cobra.Command, args []string) error {
	var opts store.ImportOptions
	opts.Orgs, _ = c.Flags().GetStringArray("org")
	opts.Replace, _ = c.Flags().GetBool("replace")
	opts.TrustDomains, _ = c.Flags().GetBool("trust-domains")
	opts.WithSecrets, _ = c.Flags().GetBool("with-secrets")
	opts.GatewayAudit, _ = c.Flags().GetBool("with-gateway-audit")
	opts.DryRun, _ = c.Flags().GetBool("dry-run")
	in, cleanup, err := privateCopy(args[0])
	if err != nil {
		return err
	}
	defer cleanup()
	st, err := openStore(c)
	if err != nil {
		return err
	}
	res, err := st.Import(in, opts)
	if err == nil && !opts.DryRun {
		err = auditOffline(st, "store.import", map[string]string{
			"orgs":               orgList(opts.Orgs),
			"replace":            strconv.FormatBool(opts.Replace),
			"file":               filepath.Base(args[0]),
			"trust_domains":      strconv.FormatBool(opts.TrustDomains),
			"with_secrets":       strconv.FormatBool(opts.WithSecrets),
			"with_gateway_audit": strconv.FormatBool(opts.GatewayAudit),
			"organizations":      strconv.Itoa(res.Stats["org"]),
			"users":              strconv.Itoa(res.Stats["user"]),
			"secrets":            strings.Join(res.Secrets, ","),
			"pending_domains":    strconv.Itoa(len(res.PendingDomains)),
		})
	}
	if cerr := st.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return printImportSummary(c, res, opts.DryRun)
}

// printImportSummary prints, on standard error, what the import wrote
// (or would write) as JSON, then what the operator has to do about what
// it left out: the domains to verify again and the gateway-wide records
// not asked for. Secrets appear by name only.
func printImportSummary(c *cobra.Command, res *store.ImportResult, dryRun bool) error {
	what := "imported"
	if dryRun {
		what = "would_import"
	}
	summary := map[string]any{what: res.Stats}
	for k, v := range map[string][]string{
		"created": res.Created, "replaced": res.Replaced, "secrets": res.Secrets, "skipped_secrets": res.SkippedSecrets,
	} {
		if len(v) > 0 {
			summary[k] = v
		}
	}
	if len(res.PendingDomains) > 0 {
		summary["pending_domains"] = res.PendingDomains
	}
	if res.SkippedGatewayAudit > 0 {
		summary["skipped_gateway_audit"] = res.SkippedGatewayAudit
	}
	b, err := json.Marshal(summary)
	if err != nil {
		return err
	}
	w := c.ErrOrStderr()
	if _, err := fmt.Fprintln(w, string(b)); err != nil {
		return err
	}
	bin := orgcli.InvokedName()
	if n := len(res.PendingDomains); n > 0 {
		fmt.Fprintf(w, "%d domains verified in the file are pending here (no sign-in is routed by them until verified again).\n"+
			"Check each one's TXT record, which keeps its token (add --force to vouch for it as the operator instead):\n", n)
		for _, d := range res.PendingDomains {
			fmt.Fprintf(w, "  %s org verify-domain %s %s\n", bin, d.Org, d.Name)
		}
		fmt.Fprintln(w, "(Importing a file of your own deployment, --trust-domains keeps them verified.)")
	}
	if len(res.SkippedSecrets) > 0 {
		fmt.Fprintf(w, "Gateway secrets in the file not imported (--with-secrets imports them): %s\n", strings.Join(res.SkippedSecrets, ", "))
	}
	if res.SkippedGatewayAudit > 0 {
		fmt.Fprintf(w, "Gateway-wide audit events in the file not imported (--with-gateway-audit imports them): %d\n", res.SkippedGatewayAudit)
	}
	return nil
}

func runBackup(c *cobra.Command, _ []string) error {
	out, _ := c.Flags().GetString("output")
	if out == "-" {
		return errors.New("a backup goes to a file (-o), which is checked before it is kept")
	}
	var n int64
	err := writeOutput(c, out, func(w io.Writer) error {
		return adminGet(c, "/sso/store/backup", w)
	}, func(f *os.File) error {
		var err error
		n, err = store.CheckBackup(f)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.ErrOrStderr(), "Backup of %d bytes of store data written to %s\n", n, out)
	return nil
}

func runRestore(c *cobra.Command, args []string) error {
	dir, _ := c.Flags().GetString("path")
	f, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer f.Close()
	log := caddy.Log().Named("store")
	if err := store.LoadBackup(dir, f, log); err != nil {
		return err
	}
	// Opening it runs what Open runs (index migrations, unfinished
	// deletions): a restored store that does not open is no restore.
	st, err := store.Open(dir, store.Options{Logger: log, GCInterval: -1})
	if err != nil {
		return fmt.Errorf("the restored store does not open: %w", err)
	}
	orgs, err := st.ListOrgs()
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.ErrOrStderr(), "Restored %d organizations into %s; point the sso app's storage_path at it and start the gateway\n", len(orgs), dir)
	return nil
}

// auditOffline records an offline copy in the store's gateway-wide audit
// trail, as the admin API does for online ones.
func auditOffline(st *store.Store, action string, details map[string]string) error {
	err := st.AppendAudit(&store.AuditEvent{Actor: "operator (offline)", Action: action, Outcome: "success", Details: details})
	if err != nil {
		return fmt.Errorf("recording the %s in the audit trail: %w", action, err)
	}
	return nil
}

func orgList(orgs []string) string {
	if len(orgs) == 0 {
		return "all"
	}
	return strings.Join(orgs, ",")
}

// writeOutput runs write into the file out ("-": standard output). A file
// is written beside its final name with mode 0600 (it may hold every
// secret of the gateway), synced, checked by verify, and only then
// renamed into place: a failed or cut-short copy never takes the name of
// a good one.
func writeOutput(c *cobra.Command, out string, write func(io.Writer) error, verify func(*os.File) error) error {
	if out == "-" || out == "" {
		return write(c.OutOrStdout())
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*.partial")
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	if err := write(tmp); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := verify(tmp); err != nil {
		return fmt.Errorf("the copy written is not whole, %s not written: %w", out, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return err
	}
	ok = true
	return nil
}

// privateCopy copies the file name ("-": standard input) to a temporary
// file only this process can reach, for Import, which reads its input
// twice: the file named may change between the two reads (a directory
// others can write, a network mount), the copy cannot. The copy is
// unlinked at once (mode 0600 until then), so it is gone however the
// command ends.
func privateCopy(name string) (io.ReadSeeker, func(), error) {
	src := os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, nil, err
		}
		defer f.Close()
		src = f
	}
	tmp, err := os.CreateTemp("", "ssogate-import-*.jsonl")
	if err != nil {
		return nil, nil, fmt.Errorf("copying the file to import: %w", err)
	}
	cleanup := func() { _ = tmp.Close() }
	if err := tmp.Chmod(0o600); err != nil {
		cleanup()
		_ = os.Remove(tmp.Name())
		return nil, nil, err
	}
	if err := os.Remove(tmp.Name()); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("copying the file to import: %w", err)
	}
	if _, err := io.Copy(tmp, src); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("copying %s: %w", name, err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		cleanup()
		return nil, nil, err
	}
	return tmp, cleanup, nil
}

// adminGet streams the response of a GET on the admin API into w.
func adminGet(c *cobra.Command, path string, w io.Writer) error {
	address, _ := c.Flags().GetString("address")
	config, _ := c.Flags().GetString("config")
	adapter, _ := c.Flags().GetString("adapter")
	adminAddr, err := caddycmd.DetermineAdminAPIAddress(address, nil, config, adapter)
	if err != nil {
		return fmt.Errorf("couldn't determine admin API address: %w", err)
	}
	resp, err := caddycmd.AdminAPIRequest(adminAddr, http.MethodGet, path, nil, nil)
	if err != nil {
		return apiError(err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("reading the gateway's response: %w", err)
	}
	return nil
}

// apiError turns an admin API error response into its message.
func apiError(err error) error {
	msg := err.Error()
	i := strings.Index(msg, "HTTP ")
	if i < 0 {
		return err
	}
	_, body, ok := strings.Cut(msg[i:], ": ")
	if !ok {
		return err
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
		return err
	}
	return fmt.Errorf("%s (%s)", e.Error, strings.TrimSpace(msg[i:i+8]))
}

// printSummary prints the record counts as JSON on standard error, so
// that standard output can carry the export itself.
func printSummary(c *cobra.Command, what string, stats store.ExportStats) error {
	b, err := json.Marshal(map[string]any{what: stats})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(c.ErrOrStderr(), string(b))
	return err
}
