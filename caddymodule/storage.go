package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"regexp"
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
	// secret: never logged, never echoed in an error. Required.
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
}

// CaddyModule returns the Caddy module information.
func (PostgresStorage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "sso.storage.postgres",
		New: func() caddy.Module { return new(PostgresStorage) },
	}
}

var schemaNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Provision expands placeholders and checks the options.
func (p *PostgresStorage) Provision(caddy.Context) error {
	x := newExpander()
	x.expand("storage postgres dsn", &p.DSN, true)
	x.expand("storage postgres schema", &p.Schema, false)
	if x.err != nil {
		return fmt.Errorf("sso: %w", x.err)
	}
	if p.DSN == "" {
		return fmt.Errorf("sso: storage postgres: dsn is required (e.g. dsn {env.SSOGATE_DATABASE_URL})")
	}
	if placeholderRE.MatchString(p.DSN) {
		return fmt.Errorf("sso: storage postgres: dsn holds a placeholder that was not expanded ({env.NAME} and {file.PATH} are)")
	}
	if p.Schema == "" {
		p.Schema = "ssogate"
	}
	if !schemaNameRE.MatchString(p.Schema) || strings.HasPrefix(p.Schema, "pg_") {
		return fmt.Errorf("sso: storage postgres: schema %q: use lower-case letters, digits and _ (at most 63, not starting with a digit or pg_)", p.Schema)
	}
	if p.MaxConns < 0 || p.MaxConns > 1000 {
		return fmt.Errorf("sso: storage postgres: max_conns %d: must be from 1 to 1000 (0 for the default)", p.MaxConns)
	}
	if p.ConnectTimeout < 0 {
		return fmt.Errorf("sso: storage postgres: connect_timeout must not be negative")
	}
	return nil
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
//	}
func (p *PostgresStorage) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the module name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		opt := d.Val()
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
			return d.Errf("storage postgres: unknown option %q (known: dsn, schema, max_conns, connect_timeout)", opt)
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
