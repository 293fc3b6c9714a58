package store

import (
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Prefetching: a transaction that knows up front which keys it will read
// reads them in one exchange. On PostgreSQL every Get is a round trip to
// the server, and a user's creation reads some fifteen keys (the org, the
// counters, the record, its indexes, its deprovisioning markers, the
// stored-bytes stripes); one round trip for all of them is what keeps a
// serial SCIM import's rate near that of a write. On Badger a multi-key
// read is the same Gets, and the cache only saves the repeated ones.

// singleReadViewer is a backend that runs a view of one read without a
// transaction (Postgres.ViewSingle): one round trip instead of two.
type singleReadViewer interface {
	ViewSingle(fn func(Txn) error) error
}

// viewSingle is view for an fn that reads once: one Get or one getMany
// (not an Iterator, which may read a page at a time). Where the backend
// can, the read is a statement of its own, which sees one snapshot as a
// view does; a second read fails there.
func (s *Store) viewSingle(fn func(Txn) error) error {
	if v, ok := s.b.(singleReadViewer); ok {
		return v.ViewSingle(fn)
	}
	return s.view(fn)
}

// multiGetter is a transaction that reads several keys in one exchange.
type multiGetter interface {
	// GetMany returns the values of keys, nil for an absent key, as Get
	// would return them one by one.
	GetMany(keys [][]byte) ([][]byte, error)
}

// getMany reads keys in txn, in one exchange where the backend can.
func getMany(txn Txn, keys [][]byte) ([][]byte, error) {
	if p, ok := txn.(*prefetchedTxn); ok {
		return p.getMany(keys)
	}
	inner := txn
	if r, ok := txn.(*recordingTxn); ok {
		inner = r.Txn
	}
	if mg, ok := inner.(multiGetter); ok {
		return mg.GetMany(keys)
	}
	out := make([][]byte, len(keys))
	for i, k := range keys {
		v, err := txn.Get(k)
		switch {
		case errors.Is(err, ErrNoKey):
		case err != nil:
			return nil, err
		case v == nil:
			out[i] = []byte{} // present, empty
		default:
			out[i] = v
		}
	}
	return out, nil
}

// readAheader is a transaction that reads, in one exchange, keys, more
// keys whose reads do not count towards its conflicts (pgTxn.SnapshotRead's
// reads), and whether any key starts with each of some prefixes.
type readAheader interface {
	ReadAhead(r readSet) (vals, snapVals [][]byte, found []bool, err error)
}

// readSet is what a transaction will read: keys, snap (through
// snapshotRead) and prefixes (whether any key starts with each).
type readSet struct {
	keys, snap, prefixes [][]byte
}

func (r *readSet) add(o readSet) {
	r.keys = append(r.keys, o.keys...)
	r.snap = append(r.snap, o.snap...)
	r.prefixes = append(r.prefixes, o.prefixes...)
}

// prefetchedTxn is a transaction whose reads of some keys are answered
// from values read up front (see prefetchSet). It sees its own writes: every
// Set and Delete passes through it and updates what it answers.
type prefetchedTxn struct {
	Txn
	vals map[string][]byte // nil: absent
	// snap holds keys read for snapshotRead (untracked), when the
	// backend could read them with vals; nil otherwise.
	snap map[string][]byte
	// found says, per prefix probed, whether a key starts with it.
	found map[string]bool
}

// prefetchSet reads r.keys in txn in one exchange and returns txn
// answering them from memory. It also probes r.prefixes and, in the same
// exchange where the backend can read keys without their counting towards
// the conflicts (PostgreSQL), reads r.snap for a later snapshotRead;
// elsewhere snap is not read here (Badger's snapshotRead is a view of its
// own).
//
// On a prefetchedTxn that holds all of r already (a commit group's, see
// runGroup), it reads nothing and returns that one, whose answers follow
// the transaction's writes.
func prefetchSet(txn Txn, r readSet) (*prefetchedTxn, error) {
	if p, ok := txn.(*prefetchedTxn); ok && p.holds(r) {
		return p, nil
	}
	p := &prefetchedTxn{Txn: txn, vals: make(map[string][]byte, len(r.keys))}
	var vals, snapVals [][]byte
	var found []bool
	var err error
	if ra, ok := innerTxn(txn).(readAheader); ok {
		if vals, snapVals, found, err = ra.ReadAhead(r); err != nil {
			return nil, err
		}
		p.snap = make(map[string][]byte, len(r.snap))
		for i, k := range r.snap {
			p.snap[string(k)] = snapVals[i]
		}
	} else if vals, found, err = probe(txn, r.keys, r.prefixes); err != nil {
		return nil, err
	}
	for i, k := range r.keys {
		p.vals[string(k)] = vals[i]
	}
	if len(r.prefixes) > 0 {
		p.found = make(map[string]bool, len(r.prefixes))
		for i, pre := range r.prefixes {
			p.found[string(pre)] = found[i]
		}
	}
	return p, nil
}

// prefixFound says whether some key starts with prefix in txn, from what
// a prefetch found where it can.
func prefixFound(txn Txn, prefix []byte) (bool, error) {
	if p := outerPrefetch(txn); p != nil {
		if f, ok := p.found[string(prefix)]; ok {
			return f, nil
		}
	}
	_, found, err := probe(txn, nil, [][]byte{prefix})
	if err != nil {
		return false, err
	}
	return found[0], nil
}

// getMany answers the keys p holds from memory and reads the others in
// one exchange.
func (p *prefetchedTxn) getMany(keys [][]byte) ([][]byte, error) {
	out := make([][]byte, len(keys))
	var missing [][]byte
	var at []int
	for i, k := range keys {
		if v, ok := p.vals[string(k)]; ok {
			out[i] = v
		} else {
			missing = append(missing, k)
			at = append(at, i)
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	vals, err := getMany(p.Txn, missing)
	if err != nil {
		return nil, err
	}
	for j, v := range vals {
		out[at[j]] = v
	}
	return out, nil
}

// holds says whether p answers every read of r (snap from a snapshot
// read where the backend reads those with the others).
func (p *prefetchedTxn) holds(r readSet) bool {
	for _, k := range r.keys {
		if _, ok := p.vals[string(k)]; !ok {
			return false
		}
	}
	for _, pre := range r.prefixes {
		if _, ok := p.found[string(pre)]; !ok {
			return false
		}
	}
	if len(r.snap) == 0 {
		return true
	}
	if p.snap == nil {
		// Not read up front: only where the backend cannot (Badger),
		// and then a nested prefetch could not either.
		_, can := innerTxn(p.Txn).(readAheader)
		return !can
	}
	for _, k := range r.snap {
		if _, ok := p.snap[string(k)]; !ok {
			return false
		}
	}
	return true
}

// noteWrite keeps what p found under its prefixes true to a write of k:
// a set makes a key found there, a delete makes it unknown.
func (p *prefetchedTxn) noteWrite(k []byte, set bool) {
	if len(p.found) == 0 {
		return
	}
	ks := string(k)
	for pre := range p.found {
		if strings.HasPrefix(ks, pre) {
			if set {
				p.found[pre] = true
			} else {
				delete(p.found, pre)
			}
		}
	}
}

// innerTxn is the backend's transaction under the Store's wrappers.
func innerTxn(txn Txn) Txn {
	for {
		switch w := txn.(type) {
		case *recordingTxn:
			txn = w.Txn
		case *prefetchedTxn:
			txn = w.Txn
		default:
			return txn
		}
	}
}

// snapshotView is what snapshotRead's fn reads through: the prefetched
// snapshot values, else the untracked transaction v.
func (p *prefetchedTxn) snapshotView(v Txn) Txn {
	if p.snap == nil {
		return v
	}
	return &prefetchedTxn{Txn: v, vals: p.snap}
}

func (p *prefetchedTxn) Get(k []byte) ([]byte, error) {
	v, ok := p.vals[string(k)]
	if !ok {
		return p.Txn.Get(k)
	}
	if v == nil {
		return nil, ErrNoKey
	}
	return v, nil
}

func (p *prefetchedTxn) Set(k, v []byte, expiresAt uint64) error {
	if err := p.Txn.Set(k, v, expiresAt); err != nil {
		return err
	}
	// An expiring key may be gone when read: unknown.
	p.noteWrite(k, expiresAt == 0)
	if expiresAt != 0 {
		// Whether it is still there depends on the clock: ask the
		// backend.
		delete(p.vals, string(k))
		delete(p.snap, string(k))
		return nil
	}
	if v == nil {
		v = []byte{}
	}
	p.vals[string(k)] = v
	if _, ok := p.snap[string(k)]; ok {
		p.snap[string(k)] = v // the snapshot sees its own writes too
	}
	return nil
}

func (p *prefetchedTxn) Delete(k []byte) error {
	if err := p.Txn.Delete(k); err != nil {
		return err
	}
	p.noteWrite(k, false)
	p.vals[string(k)] = nil
	if _, ok := p.snap[string(k)]; ok {
		p.snap[string(k)] = nil
	}
	return nil
}

// GetMany reads every key in one round trip. Pending writes go first, in
// the same exchange, so the transaction sees them.
func (t *pgTxn) GetMany(keys [][]byte) ([][]byte, error) {
	return t.getMany(keys, len(keys))
}

// ReadAhead implements readAheader: r's keys, snap and prefixes in one
// round trip, the reads of snap untracked as in SnapshotRead.
func (t *pgTxn) ReadAhead(r readSet) (vals, snapVals [][]byte, found []bool, err error) {
	all := make([][]byte, 0, len(r.keys)+len(r.snap))
	all = append(append(all, r.keys...), r.snap...)
	var out [][]byte
	if len(r.prefixes) > 0 {
		out, found, err = t.probe(all, len(r.keys), r.prefixes)
	} else {
		out, err = t.getMany(all, len(r.keys))
	}
	if err != nil {
		return nil, nil, nil, err
	}
	return out[:len(r.keys)], out[len(r.keys):], found, nil
}

// getMany reads keys in one round trip; the first tracked of them count
// towards the transaction's conflicts, the others are snapshot reads.
func (t *pgTxn) getMany(keys [][]byte, tracked int) ([][]byte, error) {
	if t.err != nil {
		return nil, t.err
	}
	out := make([][]byte, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	at := make(map[string][]int, len(keys))
	for i, k := range keys {
		if len(k) == 0 {
			return nil, fmt.Errorf("store: postgres: empty key: %w", ErrInvalid)
		}
		at[string(k)] = append(at[string(k)], i)
	}
	// Read keys count towards the conflicts as Get's do: without this a
	// creation's prefetched keys (its org's live marker, the indexes it
	// found free) went unchecked, and a concurrent change of them did not
	// fail its commit.
	for _, k := range keys[:tracked] {
		t.noteRead(k)
	}
	sql := "SELECT k, v FROM " + t.p.q.table + " WHERE k = ANY($1) AND (expires_at = 0 OR expires_at > $2)"
	err := t.roundTrip(pgStmt{sql: sql, args: []any{keys, t.now}, scan: func(rows pgx.Rows) error {
		for rows.Next() {
			var k, v []byte
			if err := rows.Scan(&k, &v); err != nil {
				return err
			}
			if v == nil {
				v = []byte{} // present, empty
			}
			for _, i := range at[string(k)] {
				out[i] = v
			}
		}
		return rows.Err()
	}})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// prober is a transaction that reads keys and finds whether any key
// starts with each of prefixes, in one statement.
type prober interface {
	Probe(keys, prefixes [][]byte) (vals [][]byte, found []bool, err error)
}

// probe returns the values of keys (nil: absent) and, for each of
// prefixes, whether some key starts with it: one statement where the
// backend can (so it fits in a viewSingle), else Gets and a Seek per
// prefix.
func probe(txn Txn, keys, prefixes [][]byte) ([][]byte, []bool, error) {
	if p, ok := innerTxn(txn).(prober); ok {
		return p.Probe(keys, prefixes)
	}
	vals, err := getMany(txn, keys)
	if err != nil {
		return nil, nil, err
	}
	found := make([]bool, len(prefixes))
	for i, p := range prefixes {
		it := txn.Iterator(IterOptions{Prefix: p, KeysOnly: true})
		it.Seek(p)
		found[i] = it.Valid()
		it.Close()
	}
	return vals, found, nil
}

// Probe implements prober. A key found under a prefix counts as read,
// as an iterator's would.
func (t *pgTxn) Probe(keys, prefixes [][]byte) ([][]byte, []bool, error) {
	return t.probe(keys, len(keys), prefixes)
}

// probe is Probe whose first tracked keys count as read, the others
// being snapshot reads.
func (t *pgTxn) probe(keys [][]byte, tracked int, prefixes [][]byte) ([][]byte, []bool, error) {
	if t.err != nil {
		return nil, nil, t.err
	}
	vals := make([][]byte, len(keys))
	found := make([]bool, len(prefixes))
	at := make(map[string][]int, len(keys))
	for i, k := range keys {
		if len(k) == 0 {
			return nil, nil, fmt.Errorf("store: postgres: empty key: %w", ErrInvalid)
		}
		at[string(k)] = append(at[string(k)], i)
		if i < tracked {
			t.noteRead(k)
		}
	}
	his := make([][]byte, len(prefixes))
	atPrefix := make(map[string][]int, len(prefixes))
	for i, p := range prefixes {
		if his[i] = prefixEnd(p); his[i] == nil {
			// Store prefixes end in a separator; an unbounded range
			// would need another query.
			return nil, nil, fmt.Errorf("store: postgres: probe of an unbounded prefix %q: %w", p, ErrInvalid)
		}
		atPrefix[string(p)] = append(atPrefix[string(p)], i)
	}
	if len(keys) == 0 && len(prefixes) == 0 {
		return vals, found, nil
	}
	err := t.roundTrip(pgStmt{sql: t.p.q.probe, args: []any{keys, t.now, prefixes, his}, scan: func(rows pgx.Rows) error {
		for rows.Next() {
			var isPrefix bool
			var k, v []byte
			if err := rows.Scan(&isPrefix, &k, &v); err != nil {
				return err
			}
			if !isPrefix {
				if v == nil {
					v = []byte{} // present, empty
				}
				for _, i := range at[string(k)] {
					vals[i] = v
				}
				continue
			}
			if v != nil { // the first key under prefix k
				t.noteRead(v)
				for _, i := range atPrefix[string(k)] {
					found[i] = true
				}
			}
		}
		return rows.Err()
	}})
	if err != nil {
		return nil, nil, err
	}
	return vals, found, nil
}
