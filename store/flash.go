package store

import (
	"crypto/subtle"
	"errors"
	"time"
)

// Flashes: the one-time outcome of an admin's form post, kept for the page
// its redirect leads to (Post/Redirect/Get). They are in the store, not in
// a process's memory, because the redirect may land on another gateway
// process. The store keeps them opaque: the caller seals them (see
// configurator.Flashes) with a key the store never sees, so a flash holding
// a new SCIM token or an invitation link is no secret at rest.

const pFlash = "flash" // flash/<org>/<session>   flashRecord, TTL = its expiry

// MaxFlashBytes bounds one sealed flash: room for the configurator's
// largest (256 KiB of echoed input, which JSON may escape up to sixfold).
const MaxFlashBytes = 2 << 20

type flashRecord struct {
	// ID is the hash of the ID the redirect carries: a flash is given
	// only to the request that names it.
	ID      []byte `json:"id"`
	Expires int64  `json:"x"` // Unix nanoseconds
	Sealed  []byte `json:"v"`
}

// PutFlash keeps sealed as session's flash in org until expires,
// replacing the session's previous one. An organization keeps at most
// maxPerOrg (> 0): making room evicts that organization's flash that
// expires first, never another organization's.
func (s *Store) PutFlash(org, session string, idHash, sealed []byte, expires time.Time, maxPerOrg int) error {
	const op = "put flash"
	if err := need(op, "org", org, "session", session); err != nil {
		return err
	}
	switch {
	case len(idHash) == 0:
		return invalid(op, "empty flash ID")
	case len(sealed) > MaxFlashBytes:
		return invalid(op, "flash of %d bytes exceeds %d", len(sealed), MaxFlashBytes)
	case maxPerOrg <= 0:
		return invalid(op, "per-organization bound %d", maxPerOrg)
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	now := time.Now()
	rec := flashRecord{ID: idHash, Expires: expires.UnixNano(), Sealed: sealed}
	k := key(pFlash, org, session)
	return s.update(op, func(txn Txn) error {
		if err := requireOrg(txn, op, org); err != nil {
			return err
		}
		// The org's flashes, but for the session's own (replaced below)
		// and those past their time.
		type entry struct {
			k       []byte
			expires int64
		}
		var live []entry
		p := scanPrefix(pFlash, org)
		for _, ok := range keysWithPrefix(txn, p, nil, 0) {
			if string(ok) == string(k) {
				continue
			}
			var r flashRecord
			if err := getJSON(txn, ok, &r); err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
			if r.Expires <= now.UnixNano() {
				if err := del(txn, ok); err != nil {
					return err
				}
				continue
			}
			live = append(live, entry{ok, r.Expires})
		}
		for len(live) >= maxPerOrg {
			first := 0
			for i, e := range live {
				if e.expires < live[first].expires {
					first = i
				}
			}
			if err := del(txn, live[first].k); err != nil {
				return err
			}
			live = append(live[:first], live[first+1:]...)
		}
		_, err := setJSON(txn, k, &rec, ttlSeconds(expires))
		return err
	})
}

// TakeFlash returns session's flash in org and deletes it, if idHash
// names it and it has not expired; ErrNotFound otherwise. Check and
// deletion are one transaction, so of requests racing for one flash on
// any number of processes, at most one gets it. A flash that another ID
// asks for stays (the right redirect may still come).
func (s *Store) TakeFlash(org, session string, idHash []byte) ([]byte, error) {
	const op = "take flash"
	if err := need(op, "org", org, "session", session); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	k := key(pFlash, org, session)
	var sealed []byte
	err := s.update(op, func(txn Txn) error {
		sealed = nil
		var r flashRecord
		if err := getJSON(txn, k, &r); err != nil {
			return err
		}
		if subtle.ConstantTimeCompare(r.ID, idHash) != 1 {
			return ErrNotFound
		}
		if err := del(txn, k); err != nil {
			return err
		}
		if r.Expires <= time.Now().UnixNano() {
			return nil // past its time: gone, and not shown
		}
		sealed = r.Sealed
		return nil
	})
	if err != nil {
		return nil, wrapNotFound(err, op, "flash", "")
	}
	if sealed == nil {
		return nil, notFound(op, "flash", "")
	}
	return sealed, nil
}
