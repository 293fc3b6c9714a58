package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pgTxn is one transaction on one pooled connection. BEGIN is not sent on
// its own: it rides with the first read, and writes wait in pending until
// the next read or the commit, so a transaction that reads k and writes it
// costs two round trips. A write-only transaction sends BEGIN first,
// alone, so that a connection found dead then is retried safely rather
// than at the commit, where the outcome would be unknown.
type pgTxn struct {
	p      *Postgres
	write  bool
	noSync bool
	single bool  // one read, sent without BEGIN (ViewSingle)
	now    int64 // Unix seconds: rows expiring at or before it are absent

	conn    *pgxpool.Conn
	begun   bool // BEGIN has been executed
	wrote   bool // a write has been sent or queued
	broken  bool // the connection is unusable: close it, never reuse it
	pending []pgStmt
	err     error // the first failed round trip; poisons the transaction

	// Keys read, to be checked before this transaction's own writes of
	// them are sent, and at the latest with its commit (writing
	// transactions only); checked: done, the row is locked FOR SHARE.
	reads   map[string]struct{}
	checked map[string]struct{}
	// untracked: reads are made in the snapshot without being checked at
	// commit (see SnapshotRead).
	untracked bool
}

// SnapshotRead runs fn with reads that do not count towards this
// transaction's conflicts: they see its snapshot and its own writes, and
// a concurrent change of what they read does not fail the commit. It is
// for figures that may be approximate (the stored-bytes total checked
// against a cap), which a separate read transaction would otherwise give
// — at the price of a second pooled connection held inside the first,
// which a full pool turns into a deadlock.
func (t *pgTxn) SnapshotRead(fn func(Txn) error) error {
	t.untracked = true
	defer func() { t.untracked = false }()
	return fn(t)
}

func (t *pgTxn) noteRead(k []byte) {
	if !t.write || t.untracked {
		return
	}
	if _, ok := t.checked[string(k)]; ok {
		return
	}
	if t.reads == nil {
		t.reads = make(map[string]struct{})
	}
	t.reads[string(k)] = struct{}{}
}

// checks are the statements sent just before the pending writes. Rows
// about to be written are locked FOR UPDATE NOWAIT and rows read but not
// written FOR SHARE NOWAIT: either fails at once if a row changed since
// the snapshot or another transaction holds a lock on it, so a writer
// never waits in a lock cycle (a deadlock would cost a second before
// PostgreSQL broke it). Keys read are then claimed (see claimRead); all
// of them with the commit (all), else those the pending writes touch.
// Keys go sorted, so that claims of the same keys wait in one order.
//
// A key read as absent and then set is claimed too, although the set's
// own INSERT … ON CONFLICT would fail as the claim does if the key was
// created since the snapshot: the claim is the one statement in which a
// flush inserts rows that others may be inserting at the same time, and
// it inserts them in key order. Leaving some of them to the upsert makes
// two such statements, which two transactions can enter in opposite
// orders and wait on each other's new rows: a deadlock, which PostgreSQL
// breaks only after deadlock_timeout (a second): in a review, 1 of 40 and
// 2 of 200 concurrent pairs reading two absent keys and setting one each
// did. (Transactions that flush writes more than once can still wait in
// a cycle across flushes, as before; PostgreSQL breaks that, and the
// store retries.)
func (t *pgTxn) checks(all bool) []pgStmt {
	written := make(map[string]struct{}, len(t.pending))
	for _, w := range t.pending {
		written[string(w.args[0].([]byte))] = struct{}{}
	}
	var readKeys []string
	for k := range t.reads {
		if _, w := written[k]; all || w {
			readKeys = append(readKeys, k)
		}
	}
	var wkeys, skeys, ckeys [][]byte
	for k := range written {
		wkeys = append(wkeys, []byte(k))
	}
	for _, k := range readKeys {
		delete(t.reads, k)
		if t.checked == nil {
			t.checked = make(map[string]struct{})
		}
		t.checked[k] = struct{}{}
		if _, w := written[k]; !w {
			skeys = append(skeys, []byte(k))
		}
		ckeys = append(ckeys, []byte(k))
	}
	drain := func(r pgx.Rows) error {
		for r.Next() {
		}
		return r.Err()
	}
	var stmts []pgStmt
	if len(wkeys) > 0 {
		stmts = append(stmts, pgStmt{sql: t.p.q.lockWrite, args: []any{sortKeys(wkeys)}, scan: drain})
	}
	if len(skeys) > 0 {
		stmts = append(stmts, pgStmt{sql: t.p.q.lockRead, args: []any{sortKeys(skeys)}, scan: drain})
	}
	if len(ckeys) > 0 {
		stmts = append(stmts, pgStmt{sql: t.p.q.claimRead, args: []any{sortKeys(ckeys)}})
	}
	return stmts
}

// writes are the statements of the pending writes, in key order: the
// last write of each key, the sets in one multi-row upsert and the
// deletes in one statement. A user's creation writes some eight keys, and
// a statement each cost the server more than the rows themselves.
// Writes of distinct keys commute, and nothing read between two writes
// of one key (a read sends the writes before it), so only the last
// counts.
func (t *pgTxn) writes() []pgStmt {
	if len(t.pending) <= 1 {
		return t.pending
	}
	// Stably: writes of one key keep their order.
	slices.SortStableFunc(t.pending, func(a, b pgStmt) int {
		return bytes.Compare(a.args[0].([]byte), b.args[0].([]byte))
	})
	var setK, setV [][]byte
	var setX []int64
	var delK [][]byte
	for i, w := range t.pending {
		k := w.args[0].([]byte)
		if i+1 < len(t.pending) && bytes.Equal(k, t.pending[i+1].args[0].([]byte)) {
			continue // a later write of k follows (sorted: adjacent)
		}
		if w.sql == t.p.q.set {
			setK = append(setK, k)
			setV = append(setV, w.args[1].([]byte))
			setX = append(setX, w.args[2].(int64))
		} else {
			delK = append(delK, k)
		}
	}
	var stmts []pgStmt
	switch len(setK) {
	case 0:
	case 1:
		stmts = append(stmts, pgStmt{sql: t.p.q.set, args: []any{setK[0], setV[0], setX[0]}})
	default:
		stmts = append(stmts, pgStmt{sql: t.p.q.setMany, args: []any{setK, setV, setX}})
	}
	switch len(delK) {
	case 0:
	case 1:
		stmts = append(stmts, pgStmt{sql: t.p.q.del, args: []any{delK[0]}})
	default:
		stmts = append(stmts, pgStmt{sql: t.p.q.delMany, args: []any{delK}})
	}
	return stmts
}

func sortKeys(ks [][]byte) [][]byte {
	slices.SortFunc(ks, bytes.Compare)
	return ks
}

// pgStmt is one statement of a round trip; scan reads a query's rows.
type pgStmt struct {
	sql  string
	args []any
	scan func(pgx.Rows) error
}

var errReadOnlyTxn = errors.New("store: postgres: write in a read-only transaction")

func (t *pgTxn) Get(k []byte) ([]byte, error) {
	var v []byte
	if _, err := t.getRow(t.p.q.get, k, &v); err != nil {
		return nil, err
	}
	return v, nil
}

// GetVersion returns k's value and a number that changes with every
// write of k (the writing transaction's ID), for paging hints.
func (t *pgTxn) GetVersion(k []byte) ([]byte, uint64, error) {
	var v []byte
	var version int64
	found, err := t.getRow(t.p.q.getV, k, &v, &version)
	if err != nil || !found {
		return nil, 0, err
	}
	return v, uint64(version), nil
}

// ExpiresAt returns k's expiry (Unix seconds, 0 = never).
func (t *pgTxn) ExpiresAt(k []byte) (uint64, error) {
	var at int64
	found, err := t.getRow(t.p.q.getX, k, &at)
	if err != nil || !found {
		return 0, err
	}
	return uint64(at), nil
}

// getRow scans the row of k that sql selects; absent is ErrNoKey.
func (t *pgTxn) getRow(sql string, k []byte, dest ...any) (bool, error) {
	if t.err != nil {
		return false, t.err
	}
	if len(k) == 0 {
		return false, fmt.Errorf("store: postgres: empty key: %w", ErrInvalid)
	}
	t.noteRead(k)
	found := false
	err := t.roundTrip(pgStmt{sql: sql, args: []any{k, t.now}, scan: func(rows pgx.Rows) error {
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			found = true
		}
		return rows.Err()
	}})
	if err != nil {
		return false, err
	}
	if !found {
		return false, ErrNoKey
	}
	return true, nil
}

func (t *pgTxn) Set(k, v []byte, expiresAt uint64) error {
	if err := t.checkWrite(k); err != nil {
		return err
	}
	if len(k) > MaxKeyBytes {
		return ErrKeyTooLong
	}
	if v == nil {
		v = []byte{} // pgx sends a nil slice as NULL
	}
	return t.queue(pgStmt{sql: t.p.q.set, args: []any{k, v, pgExpiry(expiresAt)}})
}

func (t *pgTxn) Delete(k []byte) error {
	if err := t.checkWrite(k); err != nil {
		return err
	}
	return t.queue(pgStmt{sql: t.p.q.del, args: []any{k}})
}

func (t *pgTxn) checkWrite(k []byte) error {
	if t.err != nil {
		return t.err
	}
	if !t.write {
		return errReadOnlyTxn
	}
	if len(k) == 0 {
		return fmt.Errorf("store: postgres: empty key: %w", ErrInvalid)
	}
	return nil
}

func (t *pgTxn) queue(s pgStmt) error {
	t.wrote = true
	t.pending = append(t.pending, s)
	if len(t.pending) >= maxPendingWrites {
		return t.roundTrip()
	}
	return nil
}

func (t *pgTxn) beginStmts() []pgStmt {
	if t.single {
		return nil
	}
	if !t.write {
		return []pgStmt{{sql: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"}}
	}
	s := []pgStmt{{sql: "BEGIN ISOLATION LEVEL REPEATABLE READ"}}
	if t.noSync {
		s = append(s, pgStmt{sql: "SET LOCAL synchronous_commit = off"})
	}
	return s
}

// roundTrip sends BEGIN if not yet sent, the pending writes, then tail,
// and reads every result. It never sends COMMIT (see commit), so a lost
// connection here means nothing was committed: the error says retry.
func (t *pgTxn) roundTrip(tail ...pgStmt) error {
	if t.err != nil {
		return t.err
	}
	if t.single && t.begun {
		// A second statement would see another snapshot.
		t.err = fmt.Errorf("store: postgres: a single-read view read twice: %w", ErrInvalid)
		return t.err
	}
	var stmts []pgStmt
	if !t.begun {
		stmts = t.beginStmts()
	}
	if len(t.pending) > 0 {
		stmts = append(stmts, t.checks(false)...)
		stmts = append(stmts, t.writes()...)
	}
	stmts = append(stmts, tail...)
	t.pending = nil
	_, _, err := t.exchange(stmts)
	if err != nil && err == t.err {
		return err
	}
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && !connLossCode(pgErr.Code) {
			t.err = serverError(pgErr)
		} else {
			t.err = &connLostError{err: err}
		}
		return t.err
	}
	t.begun = true
	return nil
}

// commit sends the pending writes, the change notification and COMMIT.
func (t *pgTxn) commit(keys []string) error {
	if t.single {
		return nil // no transaction was opened
	}
	if !t.begun && len(t.pending) == 0 && len(keys) == 0 {
		return nil // nothing read, nothing written: nothing to do
	}
	if !t.begun {
		if err := t.roundTrip(); err != nil {
			return err
		}
	}
	var stmts []pgStmt
	if t.wrote {
		// As in Badger, a transaction that writes nothing cannot
		// conflict: its reads were a consistent snapshot.
		stmts = t.checks(true)
	}
	stmts = append(stmts, t.writes()...)
	t.pending = nil
	if len(keys) > 0 {
		stmts = append(stmts, pgStmt{sql: "SELECT pg_notify($1, $2)", args: []any{t.p.channel, t.p.notifyPayload(keys)}})
	}
	commitAt := len(stmts)
	stmts = append(stmts, pgStmt{sql: "COMMIT"})
	ok, tag, err := t.exchange(stmts)
	if err != nil && err == t.err {
		return err // nothing was sent
	}
	if ok > commitAt {
		// COMMIT's answer came back: whatever failed after it (a
		// shutdown notice) did not undo it.
		if tag.String() != "COMMIT" {
			// PostgreSQL answers ROLLBACK to the COMMIT of a failed
			// transaction; a pipeline should never get there.
			return fmt.Errorf("store: postgres: commit answered %q", tag.String())
		}
		return nil
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && !connLossCode(pgErr.Code) {
		return serverError(pgErr)
	}
	// The server's own word on a statement before COMMIT (a shutdown
	// notice, say) settles it: COMMIT never ran. So does having written
	// nothing. Otherwise the reply to COMMIT may just have been lost.
	if (errors.As(err, &pgErr) && ok < commitAt) || (!t.wrote && len(keys) == 0) || pgconn.SafeToRetry(err) {
		return &connLostError{err: err}
	}
	return fmt.Errorf("store: postgres: connection lost while committing, the transaction may or may not have committed: %w: %w", ErrCommitUnknown, err)
}

// exchange sends stmts as one pipelined batch and reads their results in
// order. ok is how many succeeded and tag the last one's command tag; the
// server's answer to statement ok is err. A connection that failed other
// than by the server's answer is marked broken.
func (t *pgTxn) exchange(stmts []pgStmt) (ok int, tag pgconn.CommandTag, err error) {
	if t.conn == nil {
		ctx, cancel := context.WithTimeout(t.p.ctx, t.p.acquireWait)
		c, err := t.p.pool.Acquire(ctx)
		cancel()
		if err != nil {
			var ce *pgconn.ConnectError
			if errors.Is(err, context.DeadlineExceeded) && !errors.As(err, &ce) && t.p.ctx.Err() == nil {
				// Every connection stayed busy: retrying would only queue
				// again. Not a lost connection, so not retried.
				t.err = fmt.Errorf("store: postgres: no free connection within %v (pool of %d): %w",
					t.p.acquireWait, t.p.pool.Config().MaxConns, err)
				return 0, tag, t.err
			}
			return 0, tag, fmt.Errorf("connect: %w", safeConnectError(err))
		}
		t.conn = c
	}
	ctx, cancel := context.WithTimeout(t.p.ctx, roundTripTimeout)
	defer cancel()
	b := &pgx.Batch{}
	for _, s := range stmts {
		b.Queue(s.sql, s.args...)
	}
	br := t.conn.SendBatch(ctx, b)
	for _, s := range stmts {
		if s.scan != nil {
			var rows pgx.Rows
			if rows, err = br.Query(); err == nil {
				err = s.scan(rows)
				rows.Close()
				if err == nil {
					err = rows.Err()
				}
			}
		} else {
			tag, err = br.Exec()
		}
		if err != nil {
			break
		}
		ok++
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	var pgErr *pgconn.PgError
	if err != nil && (!errors.As(err, &pgErr) || t.conn.Conn().IsClosed()) {
		t.broken = true
	}
	return ok, tag, err
}

// finish ends the transaction if it is still open and gives the
// connection back; a broken one is closed, and the pool drops it.
func (t *pgTxn) finish() {
	if t.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), roundTripTimeout)
	defer cancel()
	if !t.broken && t.conn.Conn().PgConn().TxStatus() != 'I' {
		if _, err := t.conn.Exec(ctx, "ROLLBACK"); err != nil {
			t.broken = true
		}
	}
	if t.broken {
		_ = t.conn.Conn().Close(ctx)
	}
	t.conn.Release()
	t.conn = nil
}

// connLossCode says whether a server error means the session is gone (or
// could not be had) rather than that the statement was refused.
func connLossCode(code string) bool {
	switch code {
	case "57P01", // admin_shutdown
		"57P02", // crash_shutdown
		"57P03", // cannot_connect_now: starting up, recovering
		"53300": // too_many_connections
		return true
	}
	return strings.HasPrefix(code, "08") // connection_exception
}

// serverError wraps an error the server answered with; the Store retries
// the ones that mean a concurrent transaction won.
func serverError(e *pgconn.PgError) error {
	switch e.Code {
	case "40001", // serialization_failure
		"55P03", // lock_not_available: a read row is being written
		"40P01", // deadlock_detected
		"23505": // unique_violation: a concurrent insert of the same key
		return fmt.Errorf("store: postgres: %w: %w", ErrTxnConflict, e)
	}
	return fmt.Errorf("store: postgres: %w", e)
}
