package store

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Prefetching: a transaction that knows up front which keys it will read
// reads them in one exchange. On PostgreSQL every Get is a round trip to
// the server, and a user's creation reads some fifteen keys (the org, the
// counters, the record, its indexes, its deprovisioning markers, the
// stored-bytes stripes); one round trip for all of them is what keeps a
// serial SCIM import's rate near that of a write. On Badger a multi-key
// read is the same Gets, and the cache only saves the repeated ones.

// multiGetter is a transaction that reads several keys in one exchange.
type multiGetter interface {
	// GetMany returns the values of keys, nil for an absent key, as Get
	// would return them one by one.
	GetMany(keys [][]byte) ([][]byte, error)
}

// getMany reads keys in txn, in one exchange where the backend can.
func getMany(txn Txn, keys [][]byte) ([][]byte, error) {
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

// prefetchedTxn is a transaction whose reads of some keys are answered
// from values read up front (see prefetch). It sees its own writes: every
// Set and Delete passes through it and updates what it answers.
type prefetchedTxn struct {
	Txn
	vals map[string][]byte // nil: absent
}

// prefetch reads keys in txn in one exchange and returns txn answering
// them from memory.
func prefetch(txn Txn, keys ...[]byte) (*prefetchedTxn, error) {
	vals, err := getMany(txn, keys)
	if err != nil {
		return nil, err
	}
	p := &prefetchedTxn{Txn: txn, vals: make(map[string][]byte, len(keys))}
	for i, k := range keys {
		p.vals[string(k)] = vals[i]
	}
	return p, nil
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
	if expiresAt != 0 {
		// Whether it is still there depends on the clock: ask the
		// backend.
		delete(p.vals, string(k))
		return nil
	}
	if v == nil {
		v = []byte{}
	}
	p.vals[string(k)] = v
	return nil
}

func (p *prefetchedTxn) Delete(k []byte) error {
	if err := p.Txn.Delete(k); err != nil {
		return err
	}
	p.vals[string(k)] = nil
	return nil
}

// GetMany reads every key in one round trip. Pending writes go first, in
// the same exchange, so the transaction sees them.
func (t *pgTxn) GetMany(keys [][]byte) ([][]byte, error) {
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
	for _, k := range keys {
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
