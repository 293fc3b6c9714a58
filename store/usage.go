package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"sync"
	"sync/atomic"
)

// Stored bytes: every key an organization's users and groups occupy (the
// records, their indexes, group memberships and deprovisioning markers)
// is charged to the organization as len(key) + len(value), by the
// transaction that writes or deletes it. A cap on what one tenant may
// keep (MaxStoredBytes) needs this total without scanning, and a total
// kept in the same transactions as the records never drifts from them.
//
// The total is spread over usageStripes counter keys, chosen by a hash of
// the resource a write is about, so that concurrent writes in one
// organization (which read and rewrite their stripe) rarely conflict; the
// total is their sum. A stripe may hold a negative number (a user's
// deletion shrinks the groups it belonged to, charged to the user's
// stripe); only the sum means anything.
//
// Stores written before the counters existed have records but no
// counters. The first transaction that needs them computes them by a scan
// and writes usageMarker with them; until the marker exists, every
// charging transaction does so (the scan sees its own writes), so that
// transactions racing to be first conflict on the marker and the losers
// run again with the counters in place.

// usageStripes is the number of counter keys per organization.
const usageStripes = 16

// ErrQuota: the write would take the organization past a cap it was
// given (see MaxStoredBytes).
var ErrQuota = errors.New("over quota")

// WriteOption adjusts one write of users or groups.
type WriteOption func(*writeOptions)

type writeOptions struct {
	maxBytes  int64
	maxUsers  int
	audit     *AuditEvent
	unmatched bool
	domains   []string
}

func writeOpts(opts []WriteOption) writeOptions {
	var o writeOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

// MaxUsers refuses the creation of a user with ErrUserLimit, writing
// nothing, when the organization has max users already. The count is
// read in the creating transaction, so concurrent creations cannot
// together overshoot it. max <= 0 means no cap. Only user creations
// heed it.
func MaxUsers(max int) WriteOption {
	return func(o *writeOptions) { o.maxUsers = max }
}

// Unmatched makes a user's creation check first, in its transaction,
// what LookUpProvisioning would tell: it fails, writing nothing, with a
// *DomainOwnedError if another organization verified one of domains, and
// with ErrMatched if another user holds the userName or the externalId
// or has one of the addresses; the caller then looks the matches up and
// decides (adopts a user, refuses, or creates without this option). A
// SCIM import's creations match nothing, and so need no look-up of their
// own: on PostgreSQL its reads ride with the creation's. Only user
// creations heed it.
//
// The check is exact against concurrent writes, on every replica. The
// userName and externalId index keys are read in the transaction. An
// address is found by a prefix probe, which records no read when it finds
// nothing, but every creation of a user (CreateUser, ProvisionUser, a
// first sign-in's) reads and writes the organization's user counter, so
// concurrent creations conflict and the one that retries probes again
// after the other's commit. The other writers of an address (an update
// adding one) and of a domain's owner (a verification) check nothing
// about users, so a creation ordered before them has the outcome it
// would have had alone: the domain owners can be read untracked.
// (On PostgreSQL the absent deprovisioning markers of the address, which
// every creation reads, are claimed too, and conflict as well.)
// TestUnmatchedCreationsRaceAcrossReplicas and
// TestFirstSignInRacesProvisioning hold this; the second fails on Badger
// without the counter's conflict.
func Unmatched(domains []string) WriteOption {
	return func(o *writeOptions) { o.unmatched, o.domains = true, domains }
}

// ErrMatched: a creation with Unmatched, or a first sign-in's (see
// SignIn.NewUser), names an existing user.
var ErrMatched = errors.New("the user matches an existing one")

// DomainOwnedError: a creation with Unmatched has an address in a domain
// another organization verified.
type DomainOwnedError struct {
	Domain, Owner string
}

func (e *DomainOwnedError) Error() string {
	return fmt.Sprintf("store: domain %q is verified by organization %q", e.Domain, e.Owner)
}

// ErrUserLimit: the organization has as many users as MaxUsers allows.
var ErrUserLimit = errors.New("organization at its user limit")

// Audited records e in the audit trail in the same transaction as the
// write, so that the change and its record are kept or lost together and
// share one sync. e gets its ID and Time as AppendAudit gives them. Only
// user creations heed it.
func Audited(e *AuditEvent) WriteOption {
	return func(o *writeOptions) { o.audit = e }
}

// MaxStoredBytes refuses the write with ErrQuota, writing nothing, when it
// would grow the organization's stored bytes (see StoredBytes) past max.
// A write that does not grow them is done even when the organization is
// over max already, so that it can always delete and shrink. The check
// reads the total committed just before the write commits, so writes in
// flight at the same moment may together overshoot max by what they add.
// max <= 0 means no cap.
func MaxStoredBytes(max int64) WriteOption {
	return func(o *writeOptions) { o.maxBytes = max }
}

func usageKey(orgID string, stripe int) []byte {
	return key(pCount, "bytes", orgID, strconv.Itoa(stripe))
}

// usageMarker says that the organization's stripes are complete.
func usageMarker(orgID string) []byte { return key(pCount, "bytesok", orgID) }

func usageStripe(id string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return int(h.Sum32() % usageStripes)
}

// usage is the change one transaction makes to an organization's stored
// bytes. Make a new one in every attempt of a transaction: a retried
// attempt starts from scratch.
type usage struct {
	org   string
	delta int64
	max   int64
}

func newUsage(orgID string, opts []WriteOption) *usage {
	return &usage{org: orgID, max: writeOpts(opts).maxBytes}
}

// entrySize is len(k) + the length of k's value in txn (0 if absent). It
// reads the value rather than trusting Item.ValueSize, which only
// estimates values kept in the value log (large groups).
func entrySize(txn Txn, k []byte) (int64, error) {
	v, err := txn.Get(k)
	if errors.Is(err, ErrNoKey) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: read %q: %w", k, err)
	}
	return int64(len(k) + len(v)), nil
}

// set is setJSON (without expiry) for a charged key.
func (u *usage) set(txn Txn, k []byte, v any) ([]byte, error) {
	old, err := entrySize(txn, k)
	if err != nil {
		return nil, err
	}
	b, err := setJSON(txn, k, v, 0)
	if err != nil {
		return nil, err
	}
	u.delta += int64(len(k)+len(b)) - old
	return b, nil
}

// del is del for a charged key.
func (u *usage) del(txn Txn, k []byte) error {
	old, err := entrySize(txn, k)
	if err != nil {
		return err
	}
	if old == 0 {
		// Absent (a present key has at least its own length): the read
		// above already makes a concurrent creation of k fail this
		// transaction, and deleting nothing would only cost a write (a
		// statement on PostgreSQL; a user's creation lifts three
		// deprovisioning markers that are almost never there).
		return nil
	}
	if err := del(txn, k); err != nil {
		return err
	}
	u.delta -= old
	return nil
}

// charge records u in txn, on the stripe of the resource id, after the
// transaction's charged writes. It computes the organization's counters
// first if they were never computed, and refuses growth past u.max.
func (s *Store) charge(txn Txn, u *usage, id string) error {
	marked, err := exists(txn, usageMarker(u.org))
	if err != nil {
		return err
	}
	if !marked {
		var total int64
		err := inTxnUntracked(txn, func(v Txn) error {
			var err error
			total, err = scanUsage(v, u.org)
			return err
		})
		if err != nil {
			return err
		}
		if err := u.overCap(total); err != nil {
			return err
		}
		for i := 1; i < usageStripes; i++ {
			if err := del(txn, usageKey(u.org, i)); err != nil {
				return err
			}
		}
		if _, err := setJSON(txn, usageKey(u.org, 0), total, 0); err != nil {
			return err
		}
		_, err = setJSON(txn, usageMarker(u.org), true, 0)
		return err
	}
	if u.delta == 0 {
		return nil
	}
	if u.max > 0 && u.delta > 0 {
		// Read in a snapshot of its own: reading every stripe in txn
		// would make each growing write conflict with every other write
		// of the organization, which the stripes are there to avoid.
		committed, err := s.committedUsage(txn, u.org)
		if err != nil {
			return err
		}
		if err := u.overCap(committed + u.delta); err != nil {
			return err
		}
	}
	k := usageKey(u.org, usageStripe(id))
	var n int64
	if err := getJSON(txn, k, &n); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	_, err = setJSON(txn, k, n+u.delta, 0)
	return err
}

// overCap refuses a growing write that would leave total bytes stored.
func (u *usage) overCap(total int64) error {
	if u.max <= 0 || u.delta <= 0 || total <= u.max {
		return nil
	}
	return fmt.Errorf("store: organization %q would store %d bytes of users and groups, more than its limit of %d: %w", u.org, total, u.max, ErrQuota)
}

// committedUsage is the organization's stored bytes as committed, for
// the cap check of a growing write in txn: read in a snapshot of its own,
// since reading every stripe in txn would make each growing write
// conflict with every other write of the organization, which the stripes
// are there to avoid.
//
// Where this process is the only writer (Badger), stripes no commit has
// touched since they were last read come from memory (see stripeCache):
// on Badger a read of a key rewritten as often as a stripe visits every
// memtable and level-0 table, each holding versions of it, so reading all
// sixteen on every creation cost a creation more the larger the store
// grew.
func (s *Store) committedUsage(txn Txn, orgID string) (int64, error) {
	if s.soleWriter {
		if total, ok, err := s.stripes.sum(s, orgID); ok || err != nil {
			return total, err
		}
	}
	var total int64
	err := s.snapshotRead(txn, func(v Txn) error {
		var err error
		total, err = sumStripes(v, orgID)
		return err
	})
	return total, err
}

// stripeCache remembers stripe values with a version per stripe that
// every commit writing the stripe moves, so that a cap check re-reads
// only the stripes written since it last read them. It is a seqlock: a
// transaction that writes stripes marks them busy from the end of its
// function until its commit has returned, then moves their versions. A
// reader that finds all of an organization's stripes idle, with the same
// versions before and after reading the changed ones, has seen no commit
// touch any of them meanwhile, so the cached and the fresh values are
// one consistent state, as a snapshot would give: the total committed at
// that moment. Otherwise it reads all stripes in a snapshot as before.
//
// Only valid when no other process writes (versions move only for this
// process's commits). Stripes hash onto a fixed table of versions:
// stripes sharing a slot only cost each other a re-read.
type stripeCache struct {
	busy [stripeSlots]atomic.Int32
	ver  [stripeSlots]atomic.Uint64

	mu   sync.Mutex
	orgs map[string]*cachedStripes // bounded by maxCachedOrgs
}

type cachedStripes struct {
	ver [usageStripes]uint64
	val [usageStripes]int64
	ok  [usageStripes]bool
}

const (
	stripeSlots   = 1024
	maxCachedOrgs = 4096
)

// usageStripePrefix starts every stripe key (and not the marker's).
var usageStripePrefix = []byte(pCount + "/bytes/")

func isStripeKey(k []byte) bool { return bytes.HasPrefix(k, usageStripePrefix) }

func stripeSlot(k []byte) int {
	h := fnv.New32a()
	_, _ = h.Write(k)
	return int(h.Sum32() % stripeSlots)
}

// hold marks the slots busy: the transaction writing them is about to
// commit. It returns what release must be given.
func (c *stripeCache) hold(slots []int) []int {
	for _, i := range slots {
		c.busy[i].Add(1)
	}
	return slots
}

// release ends hold: the commit has returned, whatever its outcome (a
// failed commit may still have written, and a spurious move only costs a
// re-read).
func (c *stripeCache) release(slots []int) {
	for _, i := range slots {
		c.ver[i].Add(1)
		c.busy[i].Add(-1)
	}
}

// sum returns the organization's committed total, and false when it
// could not tell it from a consistent state (a stripe being committed):
// the caller then reads a snapshot.
func (c *stripeCache) sum(s *Store, orgID string) (int64, bool, error) {
	var keys [usageStripes][]byte
	var slots [usageStripes]int
	var before [usageStripes]uint64
	for i := range keys {
		keys[i] = usageKey(orgID, i)
		slots[i] = stripeSlot(keys[i])
		if c.busy[slots[i]].Load() != 0 {
			return 0, false, nil
		}
		before[i] = c.ver[slots[i]].Load()
	}
	var cur cachedStripes
	c.mu.Lock()
	if e := c.orgs[orgID]; e != nil {
		cur = *e
	}
	c.mu.Unlock()
	var stale [][]byte
	var at []int
	for i := range keys {
		if !cur.ok[i] || cur.ver[i] != before[i] {
			stale = append(stale, keys[i])
			at = append(at, i)
		}
	}
	if len(stale) > 0 {
		var vals [][]byte
		err := s.view(func(v Txn) error {
			var err error
			vals, err = getMany(v, stale)
			return err
		})
		if err != nil {
			return 0, false, err
		}
		for j, v := range vals {
			var n int64
			if v != nil {
				if err := json.Unmarshal(v, &n); err != nil {
					return 0, false, fmt.Errorf("store: decode %q: %w", stale[j], err)
				}
			}
			i := at[j]
			cur.val[i], cur.ver[i], cur.ok[i] = n, before[i], true
		}
	}
	for i := range keys {
		if c.busy[slots[i]].Load() != 0 || c.ver[slots[i]].Load() != before[i] {
			return 0, false, nil
		}
	}
	if len(stale) > 0 {
		c.mu.Lock()
		if c.orgs == nil || len(c.orgs) >= maxCachedOrgs {
			c.orgs = make(map[string]*cachedStripes)
		}
		e := cur
		c.orgs[orgID] = &e
		c.mu.Unlock()
	}
	var total int64
	for _, n := range cur.val {
		total += n
	}
	return total, true, nil
}

// usageKeys are the organization's stripes.
func usageKeys(orgID string) [][]byte {
	keys := make([][]byte, usageStripes)
	for i := range keys {
		keys[i] = usageKey(orgID, i)
	}
	return keys
}

func sumStripes(txn Txn, orgID string) (int64, error) {
	keys := usageKeys(orgID)
	vals, err := getMany(txn, keys)
	if err != nil {
		return 0, err
	}
	var total int64
	for i, v := range vals {
		if v == nil {
			continue
		}
		var n int64
		if err := json.Unmarshal(v, &n); err != nil {
			return 0, fmt.Errorf("store: decode %q: %w", keys[i], err)
		}
		total += n
	}
	return total, nil
}

// scanUsage adds up the charged keys of the organization as txn sees them:
// those under these prefixes, each followed by the organization.
func scanUsage(txn Txn, orgID string) (int64, error) {
	var total int64
	for _, p := range [...]string{pUser, pUName, pUExt, pUMail, pGrp, pGName, pGExt, pGMem, pUDel} {
		pre := scanPrefix(p, orgID)
		it := txn.Iterator(IterOptions{Prefix: pre})
		for it.Seek(pre); it.Valid(); it.Next() {
			v, err := it.Value()
			if err != nil {
				it.Close()
				return 0, fmt.Errorf("store: read %q: %w", it.Key(), err)
			}
			total += int64(len(it.Key()) + len(v))
		}
		it.Close()
	}
	return total, nil
}

// StoredBytes returns how many bytes the organization's users and groups
// occupy in the store: their records, indexes, memberships and
// deprovisioning markers, as len(key) + len(value) of each (Badger's own
// overhead comes on top). It reads counters kept with the records; in a
// store written before they existed, the first call computes them, which
// scans the organization once. 0 for an unknown organization.
func (s *Store) StoredBytes(orgID string) (int64, error) {
	const op = "stored bytes"
	if err := need(op, "org id", orgID); err != nil {
		return 0, err
	}
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	var total int64
	var marked bool
	err := s.view(func(txn Txn) error {
		var err error
		if marked, err = exists(txn, usageMarker(orgID)); err != nil || !marked {
			return err
		}
		total, err = sumStripes(txn, orgID)
		return err
	})
	if err != nil || marked {
		return total, err
	}
	err = s.update(op, func(txn Txn) error {
		if ok, err := exists(txn, key(pOrgLive, orgID)); err != nil || !ok {
			return err // nothing to count, and no counters left behind
		}
		if err := s.charge(txn, &usage{org: orgID}, ""); err != nil {
			return err
		}
		total, err = sumStripes(txn, orgID)
		return err
	})
	return total, err
}

// snapshotReader is a transaction that can read without the reads
// counting towards its conflicts (pgTxn.SnapshotRead).
type snapshotReader interface {
	SnapshotRead(fn func(Txn) error) error
}

// snapshotRead runs fn on reads that must not make txn conflict with
// every other writer of what they read: in txn's own snapshot where the
// backend can do that untracked, else (Badger, whose reads in a write
// transaction always count) in a read transaction of its own, which on
// Badger holds no scarce resource.
//
// Keys prefetched for it (prefetchSet) are answered from memory.
func (s *Store) snapshotRead(txn Txn, fn func(Txn) error) error {
	if sr, ok := innerTxn(txn).(snapshotReader); ok {
		return sr.SnapshotRead(func(v Txn) error {
			if p := outerPrefetch(txn); p != nil {
				v = p.snapshotView(v)
			}
			return fn(v)
		})
	}
	return s.view(fn)
}

// inTxnUntracked runs fn on txn's own snapshot and writes with reads
// that do not count towards its conflicts where the backend can
// (PostgreSQL), else (Badger) on txn itself. It is for the scan that
// computes an organization's first stored-bytes total: the marker that
// the scanning transaction reads absent and writes is what makes every
// concurrent charging transaction conflict with it (each of them writes
// or has read the marker), so the thousands of keys scanned need no
// row lock each. With them, a few writers racing to compute the first
// total locked each other out (NOWAIT) until they gave up.
func inTxnUntracked(txn Txn, fn func(Txn) error) error {
	if sr, ok := innerTxn(txn).(snapshotReader); ok {
		return sr.SnapshotRead(fn)
	}
	return fn(txn)
}

// outerPrefetch is the outermost prefetchedTxn in txn's wrappers, if any.
func outerPrefetch(txn Txn) *prefetchedTxn {
	for {
		switch w := txn.(type) {
		case *recordingTxn:
			txn = w.Txn
		case *prefetchedTxn:
			return w
		default:
			return nil
		}
	}
}
