package store

import (
	"errors"
	"fmt"
	"io"
	"strings"

	badger "github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
)

// badgerBackend is the embedded Backend: one Badger database in a
// directory, which Badger locks, so one process at a time. Badger's
// optimistic transactions are serializable snapshot isolation, which is
// exactly the Backend contract, and its write channel syncs concurrent
// commits together.
type badgerBackend struct {
	db  *badger.DB
	log *zap.Logger
}

// Badger's memtable size stays its default (64 MiB), though a smaller
// one was measured to help synced commits: each commit syncs the
// memtable's write-ahead log, an mmapped file that fills until the
// memtable is flushed, and on the development machine (ext4, Linux 6.18,
// a virtual disk) that sync slows down with what has been written to the
// file (appending 3 KB and syncing: 0.18-0.26 ms while under 30 MiB had
// been written, 0.9 ms from 45 MiB on; the same appends started 40 MiB
// into a fresh file: 0.2 ms). With 64 MiB the log reaches about 50 MiB
// before its flush, and a serial SCIM import's creation write rises from
// 0.54 to 1.4 ms before each flush (every ~37k users); with 32 MiB it
// stayed at 0.42-0.73 ms to 100k. But Badger sizes its largest
// transaction from the memtable (15% of it, about 105k entries at 64 MiB),
// and a group's membership changes are one transaction: replacing a group
// of 50,000 members (the default max_group_members) by 50,000 others
// writes about 100k entries, which 32 MiB memtables refuse (measured).
// (The SCIM memory test's growth with smaller memtables, once blamed on
// them, was the set-up's memtables still waiting for their flush: Go
// heap, which the garbage collector's target doubles; the test now waits
// for them.)

// newBadgerBackend opens (creating if needed) the Badger database in dir.
// Every acknowledged Update is synced to disk.
func newBadgerBackend(dir string, log *zap.Logger) (*badgerBackend, error) {
	if dir == "" {
		return nil, fmt.Errorf("store: open: empty directory: %w", ErrInvalid)
	}
	if log == nil {
		log = zap.NewNop()
	}
	opts := badger.DefaultOptions(dir).
		WithSyncWrites(true).
		WithMetricsEnabled(false).
		WithLoggingLevel(badger.WARNING).
		WithLogger(badgerLogger{log.Named("badger")})
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	return &badgerBackend{db: db, log: log}, nil
}

func (b *badgerBackend) Name() string { return "badger" }

func (b *badgerBackend) View(fn func(Txn) error) error {
	txn := b.db.NewTransaction(false)
	defer txn.Discard()
	return fn(badgerTxn{txn})
}

func (b *badgerBackend) Update(fn func(Txn) error, _ func() []string) error {
	txn := b.db.NewTransaction(true)
	defer txn.Discard()
	if err := fn(badgerTxn{txn}); err != nil {
		return err
	}
	if err := txn.Commit(); err != nil {
		return badgerErr("commit", err)
	}
	return nil
}

// UpdateNoSync commits like Update: Badger's sync setting is per
// database, and its write channel already lets concurrent commits share
// one sync, so the unsynced path would save little.
func (b *badgerBackend) UpdateNoSync(fn func(Txn) error, changes func() []string) error {
	return b.Update(fn, changes)
}

// soleWriter says that no other process writes this database (Badger
// locks its directory), so what this process's commits change is all
// that changes (see stripeCache).
func (b *badgerBackend) soleWriter() {}

// Subscribe does nothing: no other process can write to a Badger
// directory while this one holds its lock.
func (b *badgerBackend) Subscribe(func([]string), func(bool)) {}

// Maintain garbage-collects Badger's value log: one call rewrites at
// most one file, so it repeats while it finds work.
func (b *badgerBackend) Maintain() error {
	for i := 0; i < 100; i++ {
		err := b.db.RunValueLogGC(0.5)
		if err == nil {
			continue
		}
		if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
			return nil
		}
		return fmt.Errorf("store: value log GC: %w", err)
	}
	return nil
}

func (b *badgerBackend) Close() error {
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// Backup streams a consistent copy of the whole database while it stays
// in use (Badger's online backup format; restore with LoadBackup).
func (b *badgerBackend) Backup(w io.Writer) error {
	if _, err := b.db.Backup(w, 0); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	return nil
}

// LSMShape describes the tree a read walks through: the tables of each
// non-empty level (a read of a key that every table holds, such as a
// counter, visits every level-0 table and one table of each other level)
// and the sizes on disk. For benchmarks and diagnostics.
func (b *badgerBackend) LSMShape() string {
	var sb strings.Builder
	for _, l := range b.db.Levels() {
		if l.NumTables == 0 {
			continue
		}
		fmt.Fprintf(&sb, "L%d:%d/%dMiB ", l.Level, l.NumTables, l.Size>>20)
	}
	lsm, vlog := b.db.Size()
	fmt.Fprintf(&sb, "lsm %dMiB vlog %dMiB", lsm>>20, vlog>>20)
	return sb.String()
}

// badgerErr maps Badger's errors onto the Backend contract's.
func badgerErr(op string, err error) error {
	switch {
	case errors.Is(err, badger.ErrConflict):
		return fmt.Errorf("store: %s: %w", op, ErrTxnConflict)
	case errors.Is(err, badger.ErrTxnTooBig):
		return fmt.Errorf("store: %s: %w", op, ErrTxnTooBig)
	case errors.Is(err, badger.ErrKeyNotFound):
		return ErrNoKey
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

type badgerTxn struct{ t *badger.Txn }

func (t badgerTxn) Get(k []byte) ([]byte, error) {
	item, err := t.t.Get(k)
	if err != nil {
		return nil, badgerErr("read", err)
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, badgerErr("read", err)
	}
	return v, nil
}

func (t badgerTxn) Set(k, v []byte, expiresAt uint64) error {
	if len(k) > MaxKeyBytes {
		return ErrKeyTooLong
	}
	e := badger.NewEntry(k, v)
	e.ExpiresAt = expiresAt
	if err := t.t.SetEntry(e); err != nil {
		return badgerErr("write", err)
	}
	return nil
}

func (t badgerTxn) Delete(k []byte) error {
	if err := t.t.Delete(k); err != nil {
		return badgerErr("delete", err)
	}
	return nil
}

func (t badgerTxn) Iterator(o IterOptions) Iterator {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = o.Prefix
	opts.Reverse = o.Reverse
	opts.PrefetchValues = !o.KeysOnly
	return &badgerIter{it: t.t.NewIterator(opts), prefix: o.Prefix}
}

type badgerIter struct {
	it     *badger.Iterator
	prefix []byte
}

func (i *badgerIter) Seek(k []byte)    { i.it.Seek(k) }
func (i *badgerIter) Valid() bool      { return i.it.ValidForPrefix(i.prefix) }
func (i *badgerIter) Next()            { i.it.Next() }
func (i *badgerIter) Key() []byte      { return i.it.Item().Key() }
func (i *badgerIter) ValueSize() int64 { return i.it.Item().ValueSize() }
func (i *badgerIter) Close()           { i.it.Close() }
func (i *badgerIter) Value() ([]byte, error) {
	v, err := i.it.Item().ValueCopy(nil)
	if err != nil {
		return nil, badgerErr("read", err)
	}
	return v, nil
}

// badgerLogger forwards Badger's warnings and errors to zap. Info and debug
// messages (compaction chatter) are dropped.
type badgerLogger struct{ l *zap.Logger }

func (b badgerLogger) Errorf(f string, v ...any) {
	b.l.Error(strings.TrimSpace(fmt.Sprintf(f, v...)))
}

func (b badgerLogger) Warningf(f string, v ...any) {
	b.l.Warn(strings.TrimSpace(fmt.Sprintf(f, v...)))
}
func (badgerLogger) Infof(string, ...any)  {}
func (badgerLogger) Debugf(string, ...any) {}

// GetVersion returns k's value and Badger's commit timestamp of it.
func (t badgerTxn) GetVersion(k []byte) ([]byte, uint64, error) {
	item, err := t.t.Get(k)
	if err != nil {
		return nil, 0, badgerErr("read", err)
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, 0, badgerErr("read", err)
	}
	return v, item.Version(), nil
}

// ExpiresAt returns k's expiry (Unix seconds, 0 = never).
func (t badgerTxn) ExpiresAt(k []byte) (uint64, error) {
	item, err := t.t.Get(k)
	if err != nil {
		return 0, badgerErr("read", err)
	}
	return item.ExpiresAt(), nil
}

// OpenBadgerBackend opens the Badger database in dir as a Backend for
// OpenBackend (Open does both).
func OpenBadgerBackend(dir string, log *zap.Logger) (Backend, error) {
	return newBadgerBackend(dir, log)
}
