package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
)

// pageHints remembers where list pages start, so that a client paging
// through a large organization (SCIM clients import with startIndex and
// count) does not make every page skip over all the keys before it: with
// a hint, page n+1 seeks straight to the key page n stopped at.
//
// A hint holds for one version of the list's counter key (users/<org> or
// groups/<org>): every create and delete of a record in the list rewrites
// that key in the same transaction, so a hint made in a snapshot where
// the counter had version v names the same position in any snapshot where
// it still has version v. Updates of records do not move keys.
type pageHints struct {
	mu sync.Mutex
	m  map[pageHintKey]pageHint
}

type pageHintKey struct {
	prefix string
	offset int
}

type pageHint struct {
	version uint64
	key     []byte
}

// maxPageHints bounds the table; when full it starts afresh, which costs
// the next deep pages one skip each.
const maxPageHints = 4096

func (h *pageHints) get(prefix []byte, offset int, version uint64) []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.m[pageHintKey{string(prefix), offset}]
	if !ok || e.version != version {
		return nil
	}
	return e.key
}

func (h *pageHints) put(prefix []byte, offset int, version uint64, k []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil || len(h.m) >= maxPageHints {
		h.m = make(map[pageHintKey]pageHint)
	}
	h.m[pageHintKey{string(prefix), offset}] = pageHint{version, k}
}

// counterVersion reads a list's counter and the version of its key (0
// when there is no counter, in which case no hint is used or made).
func counterVersion(txn Txn, k []byte) (int, uint64, error) {
	vt, ok := txn.(versionedTxn)
	if !ok {
		n, err := counter(txn, k)
		return n, 0, err
	}
	b, version, err := vt.GetVersion(k)
	if errors.Is(err, ErrNoKey) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("store: read %q: %w", k, err)
	}
	var n int
	if err := json.Unmarshal(b, &n); err != nil {
		return 0, 0, fmt.Errorf("store: decode %q: %w", k, err)
	}
	return n, version, nil
}

// listPage is listJSON for the counted lists (users, groups): it starts
// from a hint when one holds for this offset and counter version, and
// leaves one for the page after it.
func (s *Store) listPage(txn Txn, p []byte, offset, limit int, version uint64, decode func([]byte) error) error {
	start, skip := p, offset
	if version != 0 && offset > 0 {
		if k := s.hints.get(p, offset, version); k != nil {
			start, skip = k, 0
		}
	}
	next, err := listFrom(txn, p, start, skip, limit, decode)
	if err != nil {
		return err
	}
	if version != 0 && next != nil {
		s.hints.put(p, offset+limit, version, next)
	}
	return nil
}
