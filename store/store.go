package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/ssogate/ssogate/identity"
)

// Options tune Open.
type Options struct {
	// Logger receives Badger's warnings and errors and the store's own
	// background-task failures. Nil disables logging.
	Logger *zap.Logger

	// GCInterval is how often the value log is garbage-collected.
	// 0 means 10 minutes; a negative value disables value-log GC.
	GCInterval time.Duration

	// Audit bounds the audit trail from the start (SetAuditPolicy changes
	// it later).
	Audit AuditPolicy

	// ObserveWrite, if set, is told how long each write transaction took,
	// retries included, by its operation name (a fixed set; for metrics).
	ObserveWrite func(op string, d time.Duration)

	// ThrottleTxns bounds the throttle transactions (failed sign-ins and
	// SCIM authentications) in flight at once; beyond it an attempt is
	// refused (ErrThrottleBusy). 0 means 4.
	ThrottleTxns int
}

const (
	defaultGCInterval = 10 * time.Minute

	// touchFlushInterval is how long a TouchSession may wait in memory
	// before it is written. Losing up to this much LastSeen progress in a
	// crash is harmless; syncing every request's touch would not be.
	touchFlushInterval = time.Second
	// maxPendingTouches triggers an early flush so the buffer stays small.
	maxPendingTouches = 50_000
	// touchesPerTxn keeps a flush transaction well under Badger's size limit.
	touchesPerTxn = 1000

	// replayMinRetention is the shortest time ConsumeOnce remembers a key,
	// whatever expiresAt says. A caller whose clock is skewed or fake (SAML
	// tests pin the clock in the past) must not get a replay window.
	replayMinRetention = time.Minute

	// maxTxnAttempts bounds the retries of a transaction that lost a
	// Badger conflict to a concurrent writer.
	maxTxnAttempts = 50

	// purgeBatch is how many keys one deletion transaction removes at most.
	purgeBatch = 5000

	// defaultAuditLimit applies when ListAudit is called with limit <= 0.
	defaultAuditLimit = 100
)

var orgIDPattern = regexp.MustCompile(`^[a-z0-9-]{2,40}$`)

// Store is ssogate's database: an ordered key-value Backend (Badger or
// PostgreSQL) with JSON values and secondary indexes kept in the same
// transaction as their records. It is safe for concurrent use. See the
// package documentation for the key layout.
type Store struct {
	b   Backend
	log *zap.Logger

	observeWrite func(op string, d time.Duration) // Options.ObserveWrite

	// mu guards closed. Every operation holds it for reading while it uses
	// the backend, so Close (which takes it for writing) waits for them to
	// finish and no operation ever reaches a closed backend.
	mu     sync.RWMutex
	closed bool

	stop chan struct{}
	wg   sync.WaitGroup

	// Buffered TouchSession updates: touches is filled by TouchSession,
	// flushing holds the batch being written so GetSession still sees it.
	touchMu    sync.Mutex
	touches    map[string]time.Time
	flushing   map[string]time.Time
	flushNow   chan struct{}
	replayKeep time.Duration // replayMinRetention; shorter in tests

	// Buffered TouchSCIMToken updates (org ID → time), guarded by touchMu
	// and written by the same flusher as session touches.
	scimTouches map[string]time.Time

	// marks tells callers which records may have changed since they read
	// them (see invalidation.go).
	marks changeMarks

	// groups lets concurrent writes of one kind share a transaction and
	// its sync (see commitgroup.go).
	groups commitGroups

	// stripes lets a stored-bytes cap check re-read only the stripes
	// written since it last read them, where soleWriter says that this
	// process is the backend's only writer (see stripeCache).
	stripes    stripeCache
	soleWriter bool

	// hints lets paging through a large user or group list seek to where
	// the previous page stopped (see pageHints).
	hints pageHints

	// audit holds aggregated audit events until they are written, and
	// schedules the trail's pruning (see audit.go).
	audit auditState

	// thr bounds what throttling costs the backend (see throttleguard.go).
	thr throttleState

	// signIns schedules the pruning of sign-in attempts (see signin.go).
	signIns signInPrunes
}

// Open opens the embedded Badger database in dir, creating it if needed.
// Writes are synced to disk before they are acknowledged (except
// TouchSession, see there). Only one Store may have dir open at a time:
// Badger locks the directory.
func Open(dir string, opts Options) (*Store, error) {
	b, err := newBadgerBackend(dir, opts.Logger)
	if err != nil {
		return nil, err
	}
	return OpenBackend(b, opts)
}

// OpenBackend opens a Store on b, which it owns from then on (Close
// closes it, and so does a failed OpenBackend).
func OpenBackend(b Backend, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	s := &Store{
		b:           b,
		log:         log,
		stop:        make(chan struct{}),
		touches:     make(map[string]time.Time),
		scimTouches: make(map[string]time.Time),
		flushNow:    make(chan struct{}, 1),
		replayKeep:  replayMinRetention,

		observeWrite: opts.ObserveWrite,
	}
	s.marks.live.Store(true)
	_, s.soleWriter = b.(interface{ soleWriter() })
	// Finish organization deletions a crash interrupted, before anyone can
	// see their leftovers.
	if err := s.resumePurges(); err != nil {
		_ = b.Close()
		return nil, err
	}
	// Indexes built by an older version are rebuilt before the first
	// lookup could miss a user or find the wrong one.
	if err := s.migrateIndexes(); err != nil {
		_ = b.Close()
		return nil, err
	}
	b.Subscribe(s.marks.remoteChange, s.marks.setLive)

	s.wg.Add(1)
	go s.touchFlusher()
	s.startThrottle(opts.ThrottleTxns)
	s.startAudit(opts.Audit)
	every := opts.GCInterval
	if every == 0 {
		every = defaultGCInterval
	}
	if every > 0 {
		s.wg.Add(1)
		go s.maintain(every)
	}
	return s, nil
}

// Backend returns the backend the Store runs on.
func (s *Store) Backend() Backend { return s.b }

// Close flushes buffered session touches, stops the background tasks and
// closes the backend, waiting for operations in flight. Calling it again
// returns ErrClosed, as does every other method after Close.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	s.mu.Unlock()

	close(s.stop)
	s.wg.Wait()
	s.flushTouches()
	s.flushSCIMTouches()
	return s.b.Close()
}

// enter marks the start of an operation; leave must follow when enter
// succeeded.
func (s *Store) enter() error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

func (s *Store) leave() { s.mu.RUnlock() }

// maintain runs the backend's housekeeping (Badger's value-log GC,
// PostgreSQL's removal of expired rows) every interval.
func (s *Store) maintain(every time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if err := s.b.Maintain(); err != nil {
			s.log.Warn("storage maintenance failed", zap.String("backend", s.b.Name()), zap.Error(err))
		}
	}
}

// now is the store's clock: UTC without a monotonic reading, so a time set
// by the store compares equal to the same time read back from JSON.
func now() time.Time { return time.Now().UTC().Round(0) }

// update runs fn in a read-write transaction and commits it, retrying from
// scratch when the backend reports a conflict with a concurrent
// transaction (fn must therefore be safe to run more than once). fn's own
// errors abort the transaction and are returned unchanged.
func (s *Store) update(op string, fn func(txn Txn) error) error {
	return s.write(op, writeSynced, fn)
}

// updateNoSync is update for writes a crash may lose (see
// Backend.UpdateNoSync).
func (s *Store) updateNoSync(op string, fn func(txn Txn) error) error {
	return s.write(op, writeNoSync, fn)
}

// updateTouch is updateNoSync for writes of last-use times (session and
// SCIM token touches), which no Watch covers: a session's LastSeen is
// judged from the record the caller holds, so a touch must not send the
// session, or its whole org, back to the full re-check.
func (s *Store) updateTouch(op string, fn func(txn Txn) error) error {
	return s.write(op, writeNoSync|writeUnwatched, fn)
}

type writeMode int

const (
	writeSynced    writeMode = 0
	writeNoSync    writeMode = 1
	writeUnwatched writeMode = 2
)

func (s *Store) write(op string, mode writeMode, fn func(txn Txn) error) error {
	if s.observeWrite != nil {
		defer func(start time.Time) { s.observeWrite(op, time.Since(start)) }(time.Now())
	}
	for attempt := 1; ; attempt++ {
		err := s.tryUpdate(mode, fn)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrTxnConflict) {
			return err
		}
		if attempt >= maxTxnAttempts {
			return fmt.Errorf("store: %s: too much contention, gave up after %d attempts: %w", op, attempt, err)
		}
		// Back off with jitter so that contenders do not collide again.
		backoff := time.Duration(min(attempt, 10)) * 200 * time.Microsecond
		time.Sleep(backoff + rand.N(backoff))
	}
}

func (s *Store) tryUpdate(mode writeMode, fn func(txn Txn) error) error {
	rec := &recordingTxn{}
	// Released whatever happens, a panic in the commit included: a
	// stripe left busy would disable its cache for good.
	defer func() { s.stripes.release(rec.held) }()
	run := func(txn Txn) error {
		// A backend that runs fn again (after a failed attempt) ends
		// the previous attempt's hold first.
		s.stripes.release(rec.held)
		rec.held = nil
		rec.Txn = txn
		rec.changed = rec.changed[:0]
		rec.stripes = rec.stripes[:0]
		rec.all = false
		if mode&writeUnwatched != 0 {
			// Touches: they write no stored-bytes stripe either.
			return fn(txn)
		}
		if err := fn(rec); err != nil {
			return err
		}
		// The commit follows: stripes it writes are busy until it has
		// returned (see stripeCache).
		rec.held = s.stripes.hold(slices.Clone(rec.stripes))
		return nil
	}
	var err error
	if mode&writeNoSync != 0 {
		err = s.b.UpdateNoSync(run, rec.changes)
	} else {
		err = s.b.Update(run, rec.changes)
	}
	// Marked whatever the commit says: a failed commit may still have
	// changed something, and a spurious mark only costs a cache miss.
	s.marks.localChange(rec)
	return err
}

// view runs fn in a read-only transaction.
func (s *Store) view(fn func(txn Txn) error) error {
	return s.b.View(fn)
}

// ---- keys ----------------------------------------------------------------

// Key prefixes. Every key is "<prefix>/<segment>/<segment>...", each segment
// escaped by esc so that it never contains '/'.
const (
	pOrg      = "org"
	pOrgLive  = "orgx"
	pOrgDel   = "orgdel"
	pDom      = "dom"
	pVDom     = "vdom"
	pUser     = "user"
	pUName    = "uname"
	pUExt     = "uext"
	pUMail    = "umail"
	pGrp      = "grp"
	pGName    = "gname"
	pGExt     = "gext"
	pGMem     = "gmem"
	pSess     = "sess"
	pSessOrg  = "sessorg"
	pSessUser = "sessuser"
	pSessName = "sessname"
	pAuthn    = "authn"
	pAuthnB   = "authnb"
	pAuthnOrg = "authnorg"
	pReplay   = "replay"
	pAudit    = "audit"
	pSecret   = "secret"
	pCount    = "count"
	pUDel     = "udel"
	pMeta     = "meta"
	pSignIn   = "signin"
)

// esc percent-encodes '%' and '/' so that a segment can sit anywhere in a
// key and a prefix scan ending in '/' matches exactly one segment value.
func esc(s string) string {
	if !strings.ContainsAny(s, "%/") {
		return s
	}
	s = strings.ReplaceAll(s, "%", "%25")
	return strings.ReplaceAll(s, "/", "%2F")
}

func unesc(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	s = strings.ReplaceAll(s, "%2F", "/")
	return strings.ReplaceAll(s, "%25", "%")
}

// key builds "<prefix>/<esc(seg)>/...".
func key(prefix string, segs ...string) []byte {
	var b bytes.Buffer
	b.WriteString(prefix)
	for _, seg := range segs {
		b.WriteByte('/')
		b.WriteString(esc(seg))
	}
	return b.Bytes()
}

// scanPrefix is key(...) plus a trailing '/': the prefix of every key one
// level below.
func scanPrefix(prefix string, segs ...string) []byte {
	return append(key(prefix, segs...), '/')
}

// lastSegment returns the unescaped segment after the last '/' of k.
func lastSegment(k []byte) string {
	i := bytes.LastIndexByte(k, '/')
	return unesc(string(k[i+1:]))
}

// userKey is the form userNames and email addresses are indexed and
// compared in (see identity.Key): ASCII case folded, domains as A-labels,
// never Unicode case folding.
func userKey(s string) string { return identity.Key(s) }

// groupKey is the form group displayNames are indexed and compared in:
// ASCII case folded only.
func groupKey(s string) string { return identity.Fold(s) }

// ---- values ----------------------------------------------------------------

// ttlSeconds converts an absolute expiry into the backend's Unix-seconds
// expiry, rounded up so that the backend never drops a record before the store's own
// ExpiresAt check would.
func ttlSeconds(t time.Time) uint64 {
	sec := t.Unix()
	if t.Nanosecond() > 0 {
		sec++
	}
	if sec <= 0 {
		return 1
	}
	return uint64(sec)
}

func getJSON(txn Txn, k []byte, v any) error {
	b, err := txn.Get(k)
	if errors.Is(err, ErrNoKey) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("store: read %q: %w", k, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("store: decode %q: %w", k, err)
	}
	return nil
}

func exists(txn Txn, k []byte) (bool, error) {
	_, err := txn.Get(k)
	if errors.Is(err, ErrNoKey) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: read %q: %w", k, err)
	}
	return true, nil
}

// setJSON stores v under k; expiresAt (Unix seconds, 0 = never) becomes the
// record's expiry.
func setJSON(txn Txn, k []byte, v any, expiresAt uint64) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("store: encode %q: %w", k, err)
	}
	if err := txn.Set(k, b, expiresAt); err != nil {
		return nil, fmt.Errorf("store: write %q: %w", k, err)
	}
	return b, nil
}

func del(txn Txn, k []byte) error {
	if err := txn.Delete(k); err != nil {
		return fmt.Errorf("store: delete %q: %w", k, err)
	}
	return nil
}

// keysWithPrefix lists the keys under p (copies), at most limit (<= 0: all),
// starting at from (nil: at p).
func keysWithPrefix(txn Txn, p, from []byte, limit int) [][]byte {
	it := txn.Iterator(IterOptions{Prefix: p, KeysOnly: true})
	defer it.Close()
	if from == nil {
		from = p
	}
	var keys [][]byte
	for it.Seek(from); it.Valid(); it.Next() {
		keys = append(keys, bytes.Clone(it.Key()))
		if limit > 0 && len(keys) >= limit {
			break
		}
	}
	return keys
}

// listJSON decodes the values under p in key order, skipping offset of them
// and returning at most limit (< 0: all). decode is called per value.
func listJSON(txn Txn, p []byte, offset, limit int, decode func([]byte) error) error {
	_, err := listFrom(txn, p, p, offset, limit, decode)
	return err
}

// listFrom is listJSON starting at key start (within prefix p) rather than
// at p. A full page (limit > 0 entries decoded) returns the key of the
// entry after it, if any, so that a caller can start the next page there.
func listFrom(txn Txn, p, start []byte, skip, limit int, decode func([]byte) error) (next []byte, err error) {
	if limit == 0 {
		return nil, nil
	}
	it := txn.Iterator(IterOptions{Prefix: p})
	defer it.Close()
	n := 0
	for it.Seek(start); it.Valid(); it.Next() {
		if skip > 0 {
			skip--
			continue
		}
		v, err := it.Value()
		if err != nil {
			return nil, fmt.Errorf("store: read %q: %w", it.Key(), err)
		}
		if err := decode(v); err != nil {
			return nil, fmt.Errorf("store: decode %q: %w", it.Key(), err)
		}
		n++
		if limit > 0 && n >= limit {
			if it.Next(); it.Valid() {
				return bytes.Clone(it.Key()), nil
			}
			return nil, nil
		}
	}
	return nil, nil
}

// counter reads the integer under k (0 if absent).
func counter(txn Txn, k []byte) (int, error) {
	var n int
	if err := getJSON(txn, k, &n); err != nil && !errors.Is(err, ErrNotFound) {
		return 0, err
	}
	return n, nil
}

func addCounter(txn Txn, k []byte, delta int) error {
	n, err := counter(txn, k)
	if err != nil {
		return err
	}
	n += delta
	if n < 0 {
		n = 0
	}
	_, err = setJSON(txn, k, n, 0)
	return err
}

// ---- validation --------------------------------------------------------------

func invalid(op, format string, args ...any) error {
	return fmt.Errorf("store: %s: %s: %w", op, fmt.Sprintf(format, args...), ErrInvalid)
}

// need returns an ErrInvalid error naming the first empty value of pairs
// (name, value, name, value, ...).
func need(op string, pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			return invalid(op, "empty %s", pairs[i])
		}
	}
	return nil
}

// requireOrg fails with ErrNotFound unless the organization exists. It
// reads the org's existence marker rather than its record, so that frequent
// org updates do not conflict with every transaction that checks the org,
// while DeleteOrg (which removes the marker) still does.
func requireOrg(txn Txn, op, orgID string) error {
	ok, err := exists(txn, key(pOrgLive, orgID))
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("store: %s: organization %q: %w", op, orgID, ErrNotFound)
	}
	return nil
}

func notFound(op, what, id string) error {
	return fmt.Errorf("store: %s: %s %q: %w", op, what, id, ErrNotFound)
}

// wrapNotFound turns a bare ErrNotFound from getJSON into one that names
// the missing record.
func wrapNotFound(err error, op, what, id string) error {
	if err == ErrNotFound {
		return notFound(op, what, id)
	}
	return err
}
