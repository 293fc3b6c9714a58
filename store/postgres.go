package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/ssogate/ssogate/store/pgschema"
)

// PostgresOptions configure OpenPostgres.
type PostgresOptions struct {
	// DSN is a libpq connection string or postgres:// URL. It may hold a
	// password, so it is never logged nor put in an error.
	DSN string

	// Schema is the PostgreSQL schema holding the store's tables, created
	// if missing: lower-case ASCII letters, digits and underscores, at most
	// 63 bytes, not starting with a digit or "pg_". Default "ssogate".
	// Gateways that share a store name the same database and schema.
	Schema string

	// MaxConns bounds the connection pool; default 10. The change listener
	// (Subscribe) and its heartbeat hold two more connections of their own.
	MaxConns int32

	// Logger receives connection losses, retries and migrations. Nil
	// disables logging.
	Logger *zap.Logger
}

const (
	defaultPostgresSchema   = "ssogate"
	defaultPostgresMaxConns = 10

	// defaultConnectTimeout applies when the DSN sets none, so that an
	// unreachable server fails a dial instead of hanging it.
	defaultConnectTimeout = 10 * time.Second

	// roundTripTimeout bounds one exchange with the server (a lock wait
	// included); acquireTimeout a wait for a pooled connection.
	roundTripTimeout = 30 * time.Second
	acquireTimeout   = 30 * time.Second

	// reconnectBudget is how long a transaction keeps being retried while
	// the server is unreachable: long enough to ride out a restart or a
	// fail-over, short enough that a request does not hang on a dead
	// database. The backoff between tries doubles up to maxRetryBackoff.
	reconnectBudget = 5 * time.Second
	minRetryBackoff = 50 * time.Millisecond
	maxRetryBackoff = time.Second

	// maxPendingWrites is how many writes a transaction queues before it
	// sends them without waiting for a read or the commit.
	maxPendingWrites = 256

	// Iterator page sizes: values are fetched 128 rows at a time; a
	// keys-only scan (bounded memory per row) grows its pages to 1024.
	pgPageRows     = 128
	pgKeysPageRows = 1024

	// notifyMaxPayload keeps a change notification under PostgreSQL's
	// 8000-byte limit; a longer list is sent as "*", everything changed.
	notifyMaxPayload = 7900

	// Listener: the reconnect backoff cap (liveness: postgres_listen.go).
	maxListenBackoff    = 5 * time.Second
	listenConnectBudget = 10 * time.Second

	// Maintain removes expired rows purgeRows at a time, at most
	// purgeBatches batches per call, and only rows expired for longer
	// than expiryGrace, so that a replica whose clock is a little behind
	// never sees a row it still considers live vanish early.
	purgeRows    = 1000
	purgeBatches = 100
	expiryGrace  = time.Minute
)

// ErrCommitUnknown is returned by Update when the connection was lost
// while COMMIT was in flight: the transaction may or may not have
// committed, and retrying it blindly could apply it twice.
var ErrCommitUnknown = errors.New("store: commit outcome unknown")

// Postgres is the Backend on PostgreSQL, shared by every gateway process
// that names the same database and schema. Records live in one table, kv,
// ordered by key as bytes; change keys travel between processes by
// LISTEN/NOTIFY.
//
// Isolation is Badger's rule, which is what Backend promises: a writing
// transaction fails with ErrTxnConflict if a key it read (found or not)
// was written by a transaction that committed after it started. It runs
// at REPEATABLE READ, remembers the keys it read, and checks them in the
// round trip that sends its writes: rows it will write are locked FOR
// UPDATE NOWAIT and rows it only read FOR SHARE NOWAIT, which fails if a
// row changed or went away since the snapshot (or is locked: a conflict
// too, never a wait in a lock cycle), and keys it found absent are
// claimed with an expired placeholder row (INSERT … ON CONFLICT DO
// NOTHING), which fails if one appeared. PostgreSQL's SERIALIZABLE is
// not used: its predicate locks cover whole index pages, so writers of
// neighbouring keys conflicted on most concurrent commits
// (BenchmarkBackend: 3 to 10 conflicts per operation at 16 concurrent
// read-modify-writes of distinct keys, none this way), and it lets a
// transaction commit although a key it read has changed when the result
// is still serializable, which is weaker than the contract. Reads (View)
// are REPEATABLE READ READ ONLY; a view of a single read (ViewSingle) is
// that one statement, its own snapshot.
//
// What an operator should know: each process holds up to MaxConns pooled
// connections plus one for LISTEN; LISTEN/NOTIFY needs a session, so a
// pooler in front of the server must run in session mode.
type Postgres struct {
	pool    *pgxpool.Pool
	connCfg *pgx.ConnConfig // the listener's connections, outside the pool
	schema  string
	channel string // NOTIFY channel, derived from the schema
	id      string // this instance's ID, first line of its notifications
	log     *zap.Logger
	q       pgQueries
	now     func() time.Time // the gateway's clock, for expiry

	retryBudget time.Duration // reconnectBudget; longer in tests
	acquireWait time.Duration // acquireTimeout; shorter in tests
	pings       atomic.Int64  // heartbeats of its own the listener received, for tests
	listens     atomic.Int64  // listening connections opened, for tests

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	subscribed atomic.Bool
	closeOnce  sync.Once
}

// pgQueries is the SQL of one schema, with the table name quoted in.
type pgQueries struct {
	table   string
	get     string
	getV    string // with the row version
	getX    string // the expiry
	set     string
	setMany string // set of arrays of keys, values and expiries
	del     string
	delMany string // del of an array of keys
	purge   string
	probe   string // keys' values, and the first key under each prefix

	// Checks of the keys a writing transaction read and writes, sent
	// just before its writes.
	lockRead  string
	lockWrite string
	claimRead string
}

var pgSchemaPattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// CheckPostgresSchema refuses a schema name OpenPostgres would refuse, so
// that a config can be refused when it loads.
func CheckPostgresSchema(schema string) error {
	if !pgSchemaPattern.MatchString(schema) || strings.HasPrefix(schema, "pg_") {
		return fmt.Errorf("store: postgres: schema name %q: use lower-case letters, digits and underscores, at most 63, not starting with a digit or pg_: %w", schema, ErrInvalid)
	}
	return nil
}

// OpenPostgres connects to the database, brings its schema up to date and
// returns the backend. ctx bounds the opening (the migration lock wait
// included), not the backend's life.
func OpenPostgres(ctx context.Context, o PostgresOptions) (*Postgres, error) {
	schema := o.Schema
	if schema == "" {
		schema = defaultPostgresSchema
	}
	if err := CheckPostgresSchema(schema); err != nil {
		return nil, err
	}
	maxConns := o.MaxConns
	if maxConns == 0 {
		maxConns = defaultPostgresMaxConns
	}
	if maxConns < 0 {
		return nil, fmt.Errorf("store: postgres: max_conns %d: %w", maxConns, ErrInvalid)
	}
	if o.DSN == "" {
		// libpq would fall back to PG* variables and a local socket: an
		// unset {env.…} placeholder must not silently pick a database.
		return nil, fmt.Errorf("store: postgres: empty DSN: %w", ErrInvalid)
	}
	cfg, err := pgxpool.ParseConfig(o.DSN)
	if err != nil {
		// pgx's message quotes the DSN with the password masked on a best
		// effort basis only; nothing of it is repeated here.
		return nil, fmt.Errorf("store: postgres: the DSN does not parse (it is not shown, as it may hold a password): %w", ErrInvalid)
	}
	cfg.MaxConns = maxConns
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "ssogate"
	}
	// Every query of the store reads keys or key ranges of kv by its
	// primary key (or expired rows by their index). While kv is small, as
	// it is when a new deployment starts importing, the planner prefers
	// scanning the whole table to probing the index for several keys, and
	// the prepared statements keep that plan as the table grows: imports
	// measured here slowed up to fourfold within a few thousand users,
	// until autovacuum's next ANALYZE. A SET rather than a startup
	// parameter, which PgBouncer refuses.
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		if _, err := c.Exec(ctx, "SET enable_seqscan = off"); err != nil {
			return fmt.Errorf("store: postgres: session settings: %w", err)
		}
		return nil
	}
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	var idb [16]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return nil, fmt.Errorf("store: postgres: instance ID: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	p := &Postgres{
		pool:    pool,
		connCfg: cfg.ConnConfig.Copy(),
		schema:  schema,
		channel: notifyChannel(schema),
		id:      hex.EncodeToString(idb[:]),
		log:     log,
		q:       newPGQueries(schema),
		now:     time.Now,

		retryBudget: reconnectBudget,
		acquireWait: acquireTimeout,
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	if err := p.migrate(ctx); err != nil {
		p.cancel()
		pool.Close()
		return nil, err
	}
	return p, nil
}

func newPGQueries(schema string) pgQueries {
	t := pgx.Identifier{schema, "kv"}.Sanitize()
	return pgQueries{
		table: t,
		get:   "SELECT v FROM " + t + " WHERE k = $1 AND (expires_at = 0 OR expires_at > $2)",
		// xmin is the transaction that wrote this version of the row: it
		// changes with every write of k.
		getV: "SELECT v, xmin::text::bigint FROM " + t + " WHERE k = $1 AND (expires_at = 0 OR expires_at > $2)",
		getX: "SELECT expires_at FROM " + t + " WHERE k = $1 AND (expires_at = 0 OR expires_at > $2)",
		set: "INSERT INTO " + t + " (k, v, expires_at) VALUES ($1, $2, $3) " +
			"ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v, expires_at = EXCLUDED.expires_at",
		// Keys are distinct: ON CONFLICT cannot update a row twice.
		setMany: "INSERT INTO " + t + " (k, v, expires_at) SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bigint[]) AS w(k, v, x) ORDER BY k " +
			"ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v, expires_at = EXCLUDED.expires_at",
		del:     "DELETE FROM " + t + " WHERE k = $1",
		delMany: "DELETE FROM " + t + " WHERE k = ANY($1)",
		// Expired rows are locked too: one may have been rewritten live.
		// NOWAIT: a transaction never waits for a row lock it could be
		// in a cycle with; a locked row is a conflict, retried.
		lockRead:  "SELECT k FROM " + t + " WHERE k = ANY($1) ORDER BY k FOR SHARE NOWAIT",
		lockWrite: "SELECT k FROM " + t + " WHERE k = ANY($1) ORDER BY k FOR UPDATE NOWAIT",
		claimRead: "INSERT INTO " + t + " (k, v, expires_at) SELECT x, ''::bytea, 1 FROM unnest($1::bytea[]) AS x ORDER BY x ON CONFLICT (k) DO NOTHING",
		// The keys' rows, then per prefix [lo, hi) its first live key
		// (NULL: none), each one index probe.
		probe: "SELECT false, k, v FROM " + t + " WHERE k = ANY($1) AND (expires_at = 0 OR expires_at > $2) " +
			"UNION ALL SELECT true, r.lo, (SELECT k FROM " + t + " WHERE k >= r.lo AND k < r.hi AND (expires_at = 0 OR expires_at > $2) ORDER BY k LIMIT 1) " +
			"FROM unnest($3::bytea[], $4::bytea[]) AS r(lo, hi)",
		// SKIP LOCKED: a row a live transaction is rewriting is left for
		// the next round rather than waited for.
		purge: "DELETE FROM " + t + " WHERE k IN (SELECT k FROM " + t +
			" WHERE expires_at <> 0 AND expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
	}
}

// notifyChannel names the NOTIFY channel of a schema; channels are per
// database, so the schema keeps two stores in one database apart.
func notifyChannel(schema string) string {
	c := "ssogate_" + schema
	if len(c) > 63 { // PostgreSQL truncates identifiers at 63 bytes
		sum := sha256.Sum256([]byte(schema))
		c = "ssogate_" + hex.EncodeToString(sum[:12])
	}
	return c
}

// advisoryKey is the migration lock of a schema: advisory locks are per
// database, so it is derived from the schema name.
func advisoryKey(schema string) int64 {
	sum := sha256.Sum256([]byte("ssogate schema migration " + schema))
	return int64(binary.BigEndian.Uint64(sum[:8]))
}

// migrate applies the embedded migrations the schema lacks, holding an
// advisory lock so that replicas starting together apply each exactly
// once, and refuses a schema newer than this code.
func (p *Postgres) migrate(ctx context.Context) error {
	ms, err := pgschema.Migrations()
	if err != nil {
		return fmt.Errorf("store: postgres: %w", err)
	}
	latest := len(ms)
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("store: postgres: %w", safeConnectError(err))
	}
	defer conn.Release()
	key := advisoryKey(p.schema)
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", key); err != nil {
		return fmt.Errorf("store: postgres: take the migration lock: %w", err)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.Background(), roundTripTimeout)
		defer cancel()
		if _, err := conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", key); err != nil {
			// The lock is the session's: closing the connection frees it.
			_ = conn.Conn().Close(uctx)
		}
	}()

	qs := pgx.Identifier{p.schema}.Sanitize()
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", p.schema).Scan(&exists); err != nil {
		return fmt.Errorf("store: postgres: look up schema %s: %w", p.schema, err)
	}
	// Only when missing: CREATE SCHEMA IF NOT EXISTS needs the CREATE
	// privilege on the database even when the schema exists.
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE SCHEMA "+qs); err != nil {
			return fmt.Errorf("store: postgres: create schema %s: %w", p.schema, err)
		}
	}
	vt := pgx.Identifier{p.schema, "schema_version"}.Sanitize()
	var hasTable bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", vt).Scan(&hasTable); err != nil {
		return fmt.Errorf("store: postgres: look up %s: %w", vt, err)
	}
	if !hasTable {
		if _, err := conn.Exec(ctx, "CREATE TABLE "+vt+` (
			version integer PRIMARY KEY,
			name text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return fmt.Errorf("store: postgres: create %s: %w", vt, err)
		}
	}
	var current int
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+vt).Scan(&current); err != nil {
		return fmt.Errorf("store: postgres: read the schema version: %w", err)
	}
	if current > latest {
		return fmt.Errorf("store: postgres: schema %s is at version %d, newer than this gateway knows (%d): upgrade the gateway", p.schema, current, latest)
	}
	for _, m := range ms[current:] {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+qs); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO "+vt+" (version, name) VALUES ($1, $2)", m.Version, m.Name)
			return err
		})
		if err != nil {
			return fmt.Errorf("store: postgres: migration %s: %w", m.Name, err)
		}
		p.log.Info("applied schema migration", zap.String("schema", p.schema), zap.String("migration", m.Name))
	}
	return nil
}

// Name implements Backend.
func (p *Postgres) Name() string { return "postgres" }

// Close implements Backend: it stops the listener and closes the pool.
func (p *Postgres) Close() error {
	p.closeOnce.Do(func() {
		p.cancel()
		p.wg.Wait()
		p.pool.Close()
	})
	return nil
}

// Maintain implements Backend: it removes expired rows in batches.
func (p *Postgres) Maintain() error {
	cutoff := p.now().Add(-expiryGrace).Unix()
	for range purgeBatches {
		ctx, cancel := context.WithTimeout(p.ctx, roundTripTimeout)
		tag, err := p.pool.Exec(ctx, p.q.purge, cutoff, purgeRows)
		cancel()
		if err != nil {
			return fmt.Errorf("store: postgres: remove expired rows: %w", err)
		}
		if tag.RowsAffected() < purgeRows {
			return nil
		}
	}
	return nil
}

// View implements Backend: a REPEATABLE READ READ ONLY transaction.
func (p *Postgres) View(fn func(Txn) error) error {
	return p.run(txnView, fn, nil)
}

// ViewSingle implements singleReadViewer: View for an fn that reads
// once. The read is sent alone, with no BEGIN nor COMMIT: one statement
// sees one snapshot of its own, so nothing is lost, and the view costs
// one round trip instead of two. A second read fails.
func (p *Postgres) ViewSingle(fn func(Txn) error) error {
	return p.run(txnSingleRead, fn, nil)
}

// Update implements Backend: a REPEATABLE READ transaction whose read
// keys are checked at commit (see Postgres).
func (p *Postgres) Update(fn func(Txn) error, changes func() []string) error {
	return p.run(txnWrite, fn, changes)
}

// UpdateNoSync implements Backend: Update with synchronous_commit off, so
// the commit does not wait for the WAL flush.
func (p *Postgres) UpdateNoSync(fn func(Txn) error, changes func() []string) error {
	return p.run(txnWriteNoSync, fn, changes)
}

// txnKind is what a pgTxn may do.
type txnKind int

const (
	txnView        txnKind = iota // REPEATABLE READ READ ONLY
	txnSingleRead                 // one statement, no transaction (ViewSingle)
	txnWrite                      // REPEATABLE READ, read keys checked
	txnWriteNoSync                // txnWrite without waiting for the WAL flush
)

// connLostError marks a transaction that failed because the connection
// was lost before its commit was sent: it changed nothing and is retried.
type connLostError struct{ err error }

func (e *connLostError) Error() string { return "store: postgres: connection lost: " + e.err.Error() }
func (e *connLostError) Unwrap() error { return e.err }

// run runs fn in a transaction, retrying it while the connection is lost
// before the commit (a server restart, a fail-over), within
// reconnectBudget. Conflicts are returned for the Store to retry.
func (p *Postgres) run(kind txnKind, fn func(Txn) error, changes func() []string) error {
	deadline := time.Now().Add(p.retryBudget)
	backoff := minRetryBackoff
	for attempt := 1; ; attempt++ {
		err := p.attempt(kind, fn, changes)
		var lost *connLostError
		if !errors.As(err, &lost) {
			return err
		}
		if p.ctx.Err() != nil {
			return fmt.Errorf("store: postgres: closed: %w", lost.err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("store: postgres: database unreachable, gave up after %d attempts: %w", attempt, lost.err)
		}
		// One warning per transaction, not per try: with the database
		// down, every request in flight is retrying.
		lvl := zap.DebugLevel
		if attempt == 1 {
			lvl = zap.WarnLevel
		}
		p.log.Log(lvl, "database connection lost; retrying the transaction",
			zap.Int("attempt", attempt), zap.Duration("backoff", backoff), zap.Error(lost.err))
		select {
		case <-time.After(backoff):
		case <-p.ctx.Done():
		}
		backoff = min(2*backoff, maxRetryBackoff)
	}
}

func (p *Postgres) attempt(kind txnKind, fn func(Txn) error, changes func() []string) error {
	write := kind == txnWrite || kind == txnWriteNoSync
	t := &pgTxn{p: p, write: write, noSync: kind == txnWriteNoSync, single: kind == txnSingleRead, now: p.now().Unix()}
	defer t.finish()
	if err := fn(t); err != nil {
		// A failed round trip poisons the transaction: its error decides
		// (a lost connection is retried), unless fn already passed it on.
		if t.err != nil && !errors.Is(err, t.err) {
			return t.err
		}
		return err
	}
	if t.err != nil {
		return t.err
	}
	var keys []string
	if write && changes != nil {
		keys = changes()
	}
	return t.commit(keys)
}

// notifyPayload is this instance's ID, then one change key per line. A
// list too long for NOTIFY, or a key that cannot be carried on one text
// line, becomes "*": the listener then drops everything.
func (p *Postgres) notifyPayload(keys []string) string {
	n := len(p.id)
	for _, k := range keys {
		n += 1 + len(k)
	}
	all := n > notifyMaxPayload
	for _, k := range keys {
		if all || !notifySafe(k) {
			all = true
			break
		}
	}
	if all {
		return p.id + "\n*"
	}
	b := make([]byte, 0, n)
	b = append(b, p.id...)
	for _, k := range keys {
		b = append(b, '\n')
		b = append(b, k...)
	}
	return string(b)
}

// notifySafe says whether k can travel as one line of a text payload.
func notifySafe(k string) bool {
	return k != "" && k != "*" && utf8.ValidString(k) && !strings.ContainsAny(k, "\n\x00")
}

func pgExpiry(expiresAt uint64) int64 {
	if expiresAt > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(expiresAt)
}

var _ Backend = (*Postgres)(nil)
