package store

import (
	"errors"
	"fmt"
)

// Backend is where a Store keeps its data: an ordered key-value space with
// serializable transactions and per-key expiry. Everything the Store
// guarantees — unique indexes, indexes in the same transaction as their
// records, counters, paging order, purges — is written once, in this
// package, against Backend; a backend only has to keep its side of this
// contract, so no caller sees a difference between backends. It is the
// shape of Caddy's own certmagic.Storage, one level lower: transactions
// rather than single keys, since the Store's invariants span keys.
//
// Two backends exist: Badger (OpenBadger, embedded, one process) and
// PostgreSQL (OpenPostgres, shared by several gateway processes).
type Backend interface {
	// View runs fn in a read-only transaction on a consistent snapshot.
	View(fn func(Txn) error) error

	// Update runs fn in a read-write transaction and commits it when fn
	// returns nil. Conflicts follow Badger's optimistic rule: if a
	// concurrent transaction committed a write to a key this one read
	// (by Get, or returned by an iterator; a key read as absent included),
	// Update returns an error matching ErrTxnConflict
	// and changes nothing, and the Store runs fn again from scratch. When
	// Update returns nil the write is durable (synced or committed) and
	// visible to every later transaction of every process on the backend.
	//
	// changes (the Store's change keys, see invalidation.go) is published to
	// every other process on the backend if, and only if, the transaction
	// commits; a single-process backend ignores it.
	Update(fn func(Txn) error, changes func() []string) error

	// UpdateNoSync is Update for writes that may be lost in a crash
	// (buffered session touches, throttle counters): a backend may skip the
	// sync to disk, never atomicity or isolation.
	UpdateNoSync(fn func(Txn) error, changes func() []string) error

	// Subscribe registers the Store's listener for changes committed by
	// other processes. onChange receives the change keys of each remote
	// commit; onState(false) means changes may be missed from now on (a lost
	// notification connection), onState(true) that they are delivered
	// again. A single-process backend never calls either.
	Subscribe(onChange func(keys []string), onState func(live bool))

	// Maintain runs periodic housekeeping (Badger's value-log GC,
	// PostgreSQL's removal of expired rows); the Store calls it about
	// every interval until Close.
	Maintain() error

	// Name is "badger" or "postgres", for logs and metrics.
	Name() string

	// Close releases the backend; no method is called after it.
	Close() error
}

// Txn is one transaction of a Backend. Keys are compared as byte strings.
// Values passed to Set are not retained by the caller afterwards, and
// values returned by Get or an Iterator stay valid for the whole
// transaction. A record whose expiry (Unix seconds, 0 = never) has passed
// is absent, whether or not the backend has removed it yet.
type Txn interface {
	// Get returns the value of k, or an error matching ErrNoKey.
	Get(k []byte) ([]byte, error)
	// Set writes k; expiresAt is Unix seconds, 0 for never. A transaction
	// sees its own writes. A key over MaxKeyBytes is ErrKeyTooLong.
	Set(k, v []byte, expiresAt uint64) error
	// Delete removes k (absent keys are not an error).
	Delete(k []byte) error
	// Iterator walks the keys that start with o.Prefix, in ascending order
	// (descending with o.Reverse). It must be closed.
	Iterator(o IterOptions) Iterator
}

// IterOptions selects what an Iterator walks.
type IterOptions struct {
	Prefix  []byte
	Reverse bool
	// KeysOnly says values will not be read (a hint; Value still works).
	KeysOnly bool
}

// Iterator walks a key range in order, as Badger's does: Seek positions
// it, Valid says whether it is on a key within the prefix. Errors (a lost
// connection mid-scan) end the iteration and fail the transaction: Update
// and View return them, so callers need not check for them here.
type Iterator interface {
	// Seek moves to the first key >= k (<= k when reversed).
	Seek(k []byte)
	Valid() bool
	Next()
	// Key returns the current key; valid until Next.
	Key() []byte
	// Value returns the current value.
	Value() ([]byte, error)
	// ValueSize is the stored size of the current value in bytes.
	ValueSize() int64
	Close()
}

// MaxKeyBytes is the longest key a Backend stores: a PostgreSQL index
// entry holds about 2.7 KB (less when the key does not compress), and
// both backends refuse the same keys, with ErrKeyTooLong, so that no
// caller's outcome depends on the backend. Keys grow with identifiers a
// client chooses (an externalId, a group's name), which the SCIM caps
// keep far below this unless an operator raises max_string_length.
const MaxKeyBytes = 2600

// ErrKeyTooLong is what Txn.Set returns for a key over MaxKeyBytes; it
// matches ErrInvalid too.
var ErrKeyTooLong = fmt.Errorf("store: an identifier too long to be indexed (a key over %d bytes): %w", MaxKeyBytes, ErrInvalid)

// ErrNoKey is returned by Txn.Get for a key that is absent or expired.
var ErrNoKey = errors.New("store: key not found")

// ErrTxnConflict is what a Backend's Update returns when a concurrent
// transaction won; the Store retries.
var ErrTxnConflict = errors.New("store: transaction conflict")

// ErrTxnTooBig is returned by a Backend whose transaction cannot hold
// more writes; the Store splits the work into smaller transactions.
var ErrTxnTooBig = errors.New("store: transaction too big")

// versionedTxn is implemented by a Txn that can tell when a key was last
// written: GetVersion's version changes with every write of k. Paging
// hints (pagehints.go) use it to know a list is unchanged; without it they
// are simply not used.
type versionedTxn interface {
	GetVersion(k []byte) (v []byte, version uint64, err error)
}

// keyAtTxn is implemented by a Txn that can find the key n places into
// a prefix's range without handing over the keys before it: one statement
// on PostgreSQL, where an iterator would bring all n across the network
// (a prune by count of a long audit trail). Badger's iterator is as cheap.
type keyAtTxn interface {
	// KeyAt returns the key at index n (from 0) of the keys that start
	// with prefix and are >= from, in ascending order, or nil when there
	// are n or fewer. It records no read, so it is for views.
	KeyAt(prefix, from []byte, n int) ([]byte, error)
}

// expiryTxn is implemented by a Txn that can report a key's expiry (Unix
// seconds, 0 = never); tests use it to check expiries are kept.
type expiryTxn interface {
	ExpiresAt(k []byte) (uint64, error)
}
