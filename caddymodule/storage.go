package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/ssogate/ssogate/store"
)

func init() {
	caddy.RegisterModule(BadgerStorage{})
	caddy.RegisterModule(PostgresStorage{})
}

// Storage is a module of the sso.storage namespace: where the sso app
// keeps its data. Every backend runs the same store code (package store),
// so nothing but durability and sharing changes with the choice.
type Storage interface {
	// poolKey names the storage: configs with the same key share one open
	// store across reloads. It never holds a secret.
	poolKey() string
	// describe is what logs say about the storage (never a secret).
	describe() []zap.Field
	// open opens the backend.
	open(log *zap.Logger) (store.Backend, error)
}

// BadgerStorage keeps the data in an embedded Badger database: one
// process, no setup. It is the default.
type BadgerStorage struct {
	// Directory of the database. Default: `ssogate` under Caddy's data
	// directory.
	Path string `json:"path,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (BadgerStorage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "sso.storage.badger",
		New: func() caddy.Module { return new(BadgerStorage) },
	}
}

// Provision expands placeholders and resolves the default path.
func (b *BadgerStorage) Provision(caddy.Context) error {
	x := newExpander()
	x.expand("storage badger path", &b.Path, false)
	if x.err != nil {
		return fmt.Errorf("sso: %w", x.err)
	}
	if b.Path == "" {
		b.Path = filepath.Join(caddy.AppDataDir(), "ssogate")
	}
	if err := noPlaceholder("storage badger path", b.Path); err != nil {
		return fmt.Errorf("sso: %w", err)
	}
	abs, err := filepath.Abs(b.Path)
	if err != nil {
		return fmt.Errorf("sso: storage path %q: %w", b.Path, err)
	}
	b.Path = abs
	return nil
}

func (b *BadgerStorage) poolKey() string { return "badger:" + b.Path }
func (b *BadgerStorage) describe() []zap.Field {
	return []zap.Field{zap.String("backend", "badger"), zap.String("path", b.Path)}
}
func (b *BadgerStorage) open(log *zap.Logger) (store.Backend, error) {
	return store.OpenBadgerBackend(b.Path, log)
}

// UnmarshalCaddyfile reads
//
//	storage badger [<path>] {
//	    path <dir>
//	}
func (b *BadgerStorage) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the module name
	if d.NextArg() {
		b.Path = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "path":
			if !d.AllArgs(&b.Path) {
				return d.ArgErr()
			}
		default:
			return d.Errf("storage badger: unknown option %q (known: path)", d.Val())
		}
	}
	return nil
}

// PostgresStorage keeps the data in PostgreSQL, so that several gateway
// processes (replicas behind a load balancer) share users, sessions,
// sign-in state and throttles. See "Running several replicas" in the
// README.
type PostgresStorage struct {
	// Connection string, URL (`postgres://user:pass@host/db?sslmode=verify-full`)
	// or key=value form; usually `{env.SSOGATE_DATABASE_URL}`. It is a
	// secret: never logged, never echoed in an error. Required. A host
	// reached over the network needs sslmode verify-full or verify-ca
	// (see insecure_plaintext), and each {env.*} or {file.*} placeholder
	// must expand to something.
	DSN string `json:"dsn,omitempty"`

	// Schema holding ssogate's tables, created if missing. Several
	// independent gateways may share a database under different schemas.
	// Default: `ssogate`.
	Schema string `json:"schema,omitempty"`

	// Upper bound of the connection pool of each process. Default: 10.
	MaxConns int `json:"max_conns,omitempty"`

	// How long the first connection may take at start before the config
	// is refused. Default: 30s.
	ConnectTimeout caddy.Duration `json:"connect_timeout,omitempty"`

	// Allows a database reached over the network without a verified
	// certificate (any sslmode but verify-ca and verify-full: plaintext,
	// or TLS that a machine in the middle can intercept). Only for a
	// network the operator trusts as much as the machine itself; unix
	// sockets and loopback addresses need no such permission. Default:
	// false, and such a DSN is refused.
	InsecurePlaintext bool `json:"insecure_plaintext,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (PostgresStorage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "sso.storage.postgres",
		New: func() caddy.Module { return new(PostgresStorage) },
	}
}

// Provision expands placeholders and checks the options, the DSN's
// transport security included.
func (p *PostgresStorage) Provision(ctx caddy.Context) error {
	if p.DSN == "" {
		return fmt.Errorf("sso: storage postgres: dsn is required (e.g. dsn {env.SSOGATE_DATABASE_URL})")
	}
	dsn, err := expandDSN(p.DSN)
	if err != nil {
		return fmt.Errorf("sso: storage postgres %w", err)
	}
	p.DSN = dsn
	x := newExpander()
	x.expand("storage postgres schema", &p.Schema, false)
	if x.err != nil {
		return fmt.Errorf("sso: %w", x.err)
	}
	if p.Schema == "" {
		p.Schema = "ssogate"
	}
	if err := store.CheckPostgresSchema(p.Schema); err != nil {
		return fmt.Errorf("sso: storage postgres: schema %q: %w", p.Schema, err)
	}
	if p.MaxConns < 0 || p.MaxConns > 1000 {
		return fmt.Errorf("sso: storage postgres: max_conns %d: must be from 1 to 1000 (0 for the default)", p.MaxConns)
	}
	if p.ConnectTimeout < 0 {
		return fmt.Errorf("sso: storage postgres: connect_timeout must not be negative")
	}
	hosts, mode, err := store.CheckPostgresTransport(p.DSN, p.InsecurePlaintext)
	if errors.Is(err, store.ErrInsecureTransport) {
		return fmt.Errorf("sso: storage postgres: %w with insecure_plaintext", err)
	}
	if err != nil {
		return fmt.Errorf("sso: storage postgres: %w", err)
	}
	// Where and how, never who: the user and the database name stay out
	// (a password with an unescaped '/' ends up in the database name).
	ctx.Logger().Info("postgres storage",
		zap.Strings("hosts", hosts), zap.String("sslmode", mode),
		zap.Bool("insecure_plaintext", p.InsecurePlaintext), zap.String("schema", p.Schema))
	return nil
}

// expandDSN expands the DSN's placeholders one at a time and refuses one
// that expands to nothing: `postgres://gw:{env.PW}@db/sso` with PW unset
// would become a DSN without a password, and the driver would then try
// PGPASSWORD, ~/.pgpass or trust authentication — another identity than
// the one configured. A placeholder that cannot be expanded at all is
// refused too; neither error shows the DSN, only the names of {env.*} and
// {file.*} placeholders (a stray brace pair could be part of a password).
func expandDSN(raw string) (string, error) {
	repl := caddy.NewReplacer()
	for _, ph := range placeholderRE.FindAllString(raw, -1) {
		v := repl.ReplaceKnown(ph, "")
		named := strings.HasPrefix(ph, "{env.") || strings.HasPrefix(ph, "{file.")
		switch {
		case v == ph && named:
			return "", fmt.Errorf("dsn: placeholder %s cannot be expanded", ph)
		case v == ph:
			return "", fmt.Errorf("dsn holds a placeholder that cannot be expanded ({env.NAME} and {file.PATH} can)")
		case v == "" && named:
			return "", fmt.Errorf("dsn is empty where %s stands: is the environment variable (or file) set? Without it the driver would fall back to PGPASSWORD, ~/.pgpass or trust authentication", ph)
		case v == "":
			return "", fmt.Errorf("dsn is empty where one of its placeholders stands")
		}
	}
	return repl.ReplaceKnown(raw, ""), nil
}

// poolKey identifies the database by a hash of its connection string: two
// configs on the same DSN and schema share one pool, and the DSN (which
// may hold a password) appears nowhere.
func (p *PostgresStorage) poolKey() string {
	h := sha256.Sum256([]byte(p.DSN))
	return "postgres:" + hex.EncodeToString(h[:8]) + ":" + p.Schema
}

func (p *PostgresStorage) describe() []zap.Field {
	return []zap.Field{zap.String("backend", "postgres"), zap.String("schema", p.Schema)}
}

func (p *PostgresStorage) open(log *zap.Logger) (store.Backend, error) {
	timeout := time.Duration(p.ConnectTimeout)
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	b, err := store.OpenPostgres(ctx, store.PostgresOptions{
		DSN: p.DSN, Schema: p.Schema, MaxConns: int32(p.MaxConns), Logger: log,
	})
	if err != nil {
		return nil, err // not b: a nil *Postgres in a Backend is not nil
	}
	return b, nil
}

// UnmarshalCaddyfile reads
//
//	storage postgres {
//	    dsn             <connection string>
//	    schema          <name>
//	    max_conns       <n>
//	    connect_timeout <duration>
//	    insecure_plaintext
//	}
func (p *PostgresStorage) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the module name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		opt := d.Val()
		if opt == "insecure_plaintext" {
			if d.NextArg() {
				return d.ArgErr()
			}
			p.InsecurePlaintext = true
			continue
		}
		var v string
		if !d.AllArgs(&v) {
			return d.ArgErr()
		}
		switch opt {
		case "dsn":
			p.DSN = v
		case "schema":
			p.Schema = v
		case "max_conns":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return d.Errf("storage postgres max_conns %q: want a positive number", v)
			}
			p.MaxConns = n
		case "connect_timeout":
			dur, err := caddy.ParseDuration(v)
			if err != nil {
				return d.Errf("storage postgres connect_timeout: %v", err)
			}
			p.ConnectTimeout = caddy.Duration(dur)
		default:
			return d.Errf("storage postgres: unknown option %q (known: dsn, schema, max_conns, connect_timeout, insecure_plaintext)", opt)
		}
	}
	return nil
}

var (
	_ caddy.Provisioner     = (*BadgerStorage)(nil)
	_ caddy.Provisioner     = (*PostgresStorage)(nil)
	_ caddyfile.Unmarshaler = (*BadgerStorage)(nil)
	_ caddyfile.Unmarshaler = (*PostgresStorage)(nil)
	_ Storage               = (*BadgerStorage)(nil)
	_ Storage               = (*PostgresStorage)(nil)
)
