package store

import (
	"bytes"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// pgIter walks a key range in keyset pages: each page is one query within
// the transaction (so it sees the transaction's own writes, sent first),
// starting after the last key of the previous page.
type pgIter struct {
	t  *pgTxn
	o  IterOptions
	hi []byte // exclusive upper bound of the prefix; nil: none

	rows []pgRow
	i    int
	more bool // the last page was full: there may be another
	size int  // rows per page
}

type pgRow struct {
	k, v []byte // v is nil for a keys-only scan
	size int64
}

func (t *pgTxn) Iterator(o IterOptions) Iterator {
	size := pgPageRows
	if o.KeysOnly {
		size = pgKeysPageRows
	}
	return &pgIter{t: t, o: o, hi: prefixEnd(o.Prefix), size: size}
}

// prefixEnd is the least key greater than every key starting with p: p
// without its trailing 0xff bytes, last byte incremented. Nil when there
// is none (p empty or all 0xff): the range is unbounded above.
func prefixEnd(p []byte) []byte {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] != 0xff {
			end := append([]byte(nil), p[:i+1]...)
			end[i]++
			return end
		}
	}
	return nil
}

// Seek positions the iterator at the first key >= k (<= k when reversed),
// as Badger's does: among all keys, not only the prefix's, so a seek
// outside the prefix's range lands on a key outside it (Valid is false)
// unless no key lies in between. The range queried is cut at the prefix's
// far end only, which changes nothing: Valid stops there anyway.
// An empty k means the prefix; both empty, the first key (the last,
// reversed). Badger does the same.
func (it *pgIter) Seek(k []byte) {
	it.rows, it.i, it.more = nil, 0, false
	if it.t.err != nil {
		return
	}
	if len(k) == 0 {
		k = it.o.Prefix
	}
	it.fetch(k, true)
}

// fetch loads the page after (before, reversed) from; inclusive says
// whether from itself belongs to it.
func (it *pgIter) fetch(from []byte, inclusive bool) {
	var sql []byte
	sql = append(sql, "SELECT k, "...)
	if it.o.KeysOnly {
		sql = append(sql, "NULL::bytea"...)
	} else {
		sql = append(sql, "v"...)
	}
	sql = append(sql, ", octet_length(v) FROM "...)
	sql = append(sql, it.t.p.q.table...)
	sql = append(sql, " WHERE (expires_at = 0 OR expires_at > $1) AND "...)
	// pgx sends a nil slice as NULL, which no key would compare with.
	args := []any{it.t.now, nonNil(from), it.size}
	if it.o.Reverse && len(from) == 0 {
		sql = append(sql, "$2::bytea IS NOT NULL"...) // from the very last key
	} else {
		cmp := "k >"
		if it.o.Reverse {
			cmp = "k <"
		}
		if inclusive {
			cmp += "="
		}
		sql = append(sql, cmp...)
		sql = append(sql, " $2"...)
	}
	switch {
	case it.o.Reverse:
		sql = append(sql, " AND k >= $4 ORDER BY k DESC LIMIT $3"...)
		args = append(args, nonNil(it.o.Prefix))
	case it.hi != nil:
		sql = append(sql, " AND k < $4 ORDER BY k LIMIT $3"...)
		args = append(args, it.hi)
	default:
		sql = append(sql, " ORDER BY k LIMIT $3"...)
	}
	rows := it.rows[:0]
	err := it.t.roundTrip(pgStmt{sql: string(sql), args: args, scan: func(r pgx.Rows) error {
		for r.Next() {
			var row pgRow
			if err := r.Scan(&row.k, &row.v, &row.size); err != nil {
				return err
			}
			rows = append(rows, row)
		}
		return r.Err()
	}})
	if err != nil {
		it.rows, it.i, it.more = nil, 0, false
		return
	}
	it.rows, it.i, it.more = rows, 0, len(rows) == it.size
}

func (it *pgIter) Valid() bool {
	return it.t.err == nil && it.i < len(it.rows) && bytes.HasPrefix(it.rows[it.i].k, it.o.Prefix)
}

func (it *pgIter) Next() {
	if !it.Valid() {
		return
	}
	it.i++
	if it.i == len(it.rows) && it.more && it.t.err == nil {
		last := it.rows[len(it.rows)-1].k
		it.fetch(last, false)
	}
}

func (it *pgIter) Key() []byte {
	if !it.Valid() {
		return nil
	}
	it.t.noteRead(it.rows[it.i].k)
	return it.rows[it.i].k
}

func (it *pgIter) Value() ([]byte, error) {
	if it.t.err != nil {
		return nil, it.t.err
	}
	if it.i >= len(it.rows) {
		return nil, ErrNoKey
	}
	if it.o.KeysOnly {
		return it.t.Get(it.rows[it.i].k)
	}
	it.t.noteRead(it.rows[it.i].k)
	return it.rows[it.i].v, nil
}

func (it *pgIter) ValueSize() int64 {
	if !it.Valid() {
		return 0
	}
	return it.rows[it.i].size
}

func (it *pgIter) Close() { it.rows = nil }

// KeyAt is keyAtTxn's: the server skips the first n keys itself.
func (t *pgTxn) KeyAt(prefix, from []byte, n int) ([]byte, error) {
	if n < 0 {
		return nil, fmt.Errorf("store: postgres: key at %d: %w", n, ErrInvalid)
	}
	if t.write {
		// It records no read: in a writing transaction it would step
		// around the conflict rule.
		return nil, fmt.Errorf("store: postgres: KeyAt in a writing transaction: %w", ErrInvalid)
	}
	sql := "SELECT k FROM " + t.p.q.table + " WHERE (expires_at = 0 OR expires_at > $1) AND k >= $2"
	if bytes.Compare(from, prefix) < 0 {
		from = prefix
	}
	args := []any{t.now, nonNil(from), n}
	if hi := prefixEnd(prefix); hi != nil {
		sql += " AND k < $4"
		args = append(args, hi)
	}
	sql += " ORDER BY k OFFSET $3 LIMIT 1"
	var k []byte
	err := t.roundTrip(pgStmt{sql: sql, args: args, scan: func(r pgx.Rows) error {
		for r.Next() {
			if err := r.Scan(&k); err != nil {
				return err
			}
		}
		return r.Err()
	}})
	if err != nil {
		return nil, err
	}
	return k, nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
