package store

import (
	"encoding/json"
	"errors"
	"fmt"
)

func validOrgState(st string) bool { return st == OrgInactive || st == OrgActive }

// CreateOrg stores a new organization. o.ID must match [a-z0-9-]{2,40}.
// Created and Updated are set when zero, State defaults to OrgInactive; o is
// updated in place on success. ErrExists if the ID is taken.
func (s *Store) CreateOrg(o *Org) error {
	const op = "create org"
	if o == nil {
		return invalid(op, "nil org")
	}
	if !orgIDPattern.MatchString(o.ID) {
		return invalid(op, "id %q must match %s", o.ID, orgIDPattern)
	}
	c := *o
	if c.State == "" {
		c.State = OrgInactive
	}
	if !validOrgState(c.State) {
		return invalid(op, "state %q", c.State)
	}
	if c.Created.IsZero() {
		c.Created = now()
	}
	if c.Updated.IsZero() {
		c.Updated = c.Created
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	err := s.update(op, func(txn Txn) error {
		if ok, err := exists(txn, key(pOrgDel, c.ID)); err != nil {
			return err
		} else if ok {
			return fmt.Errorf("store: %s: organization %q is still being deleted: %w", op, c.ID, ErrConflict)
		}
		if ok, err := exists(txn, key(pOrg, c.ID)); err != nil {
			return err
		} else if ok {
			return fmt.Errorf("store: %s: organization %q: %w", op, c.ID, ErrExists)
		}
		if _, err := setJSON(txn, key(pOrg, c.ID), &c, 0); err != nil {
			return err
		}
		_, err := setJSON(txn, key(pOrgLive, c.ID), true, 0)
		return err
	})
	if err != nil {
		return err
	}
	*o = c
	return nil
}

// GetOrg returns the organization, or ErrNotFound.
func (s *Store) GetOrg(id string) (*Org, error) {
	const op = "get org"
	if err := need(op, "org id", id); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	o := new(Org)
	err := s.viewSingle(func(txn Txn) error {
		return wrapNotFound(getJSON(txn, key(pOrg, id), o), op, "organization", id)
	})
	if err != nil {
		return nil, err
	}
	return o, nil
}

// ListOrgs returns every organization, sorted by ID.
func (s *Store) ListOrgs() ([]*Org, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	orgs := []*Org{}
	err := s.view(func(txn Txn) error {
		return listJSON(txn, scanPrefix(pOrg), 0, -1, func(b []byte) error {
			o := new(Org)
			if err := json.Unmarshal(b, o); err != nil {
				return err
			}
			orgs = append(orgs, o)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return orgs, nil
}

// UpdateOrg applies fn to the current organization and stores the result,
// all in one transaction. An error from fn aborts the update and is returned
// as is. fn may run more than once (the transaction is retried when it races
// with another writer) and must not call back into the Store. The ID cannot
// change; Updated is set.
func (s *Store) UpdateOrg(id string, fn func(*Org) error) (*Org, error) {
	const op = "update org"
	if err := need(op, "org id", id); err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, invalid(op, "nil update function")
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	var stored []byte
	err := s.update(op, func(txn Txn) error {
		o := new(Org)
		if err := getJSON(txn, key(pOrg, id), o); err != nil {
			return wrapNotFound(err, op, "organization", id)
		}
		if err := fn(o); err != nil {
			return err
		}
		if o.ID != id {
			return invalid(op, "organization ID is immutable")
		}
		if !validOrgState(o.State) {
			return invalid(op, "state %q", o.State)
		}
		o.Updated = now()
		var err error
		stored, err = setJSON(txn, key(pOrg, id), o, 0)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := new(Org)
	return out, json.Unmarshal(stored, out)
}

// DeleteOrg removes the organization and everything scoped to it: domains
// (releasing its verified domains), users, groups, memberships, sessions,
// outstanding AuthnRequests, counters and indexes. Audit events are kept.
//
// The organization disappears atomically: the first transaction removes
// its record, releases its domains and leaves a deletion marker; the scoped
// data is then purged in batches. If the process dies in between, Open
// finishes the purge, and CreateOrg refuses the ID until it is done.
func (s *Store) DeleteOrg(id string) error {
	const op = "delete org"
	if err := need(op, "org id", id); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	err := s.update(op, func(txn Txn) error {
		ok, err := exists(txn, key(pOrg, id))
		if err != nil {
			return err
		}
		if !ok {
			// A purge interrupted by a crash, or racing with us: finish it.
			if pending, err := exists(txn, key(pOrgDel, id)); err != nil || pending {
				return err
			}
			return notFound(op, "organization", id)
		}
		for _, k := range keysWithPrefix(txn, scanPrefix(pDom, id), nil, 0) {
			if err := releaseDomain(txn, id, lastSegment(k)); err != nil {
				return err
			}
		}
		if err := del(txn, key(pOrg, id)); err != nil {
			return err
		}
		if err := del(txn, key(pOrgLive, id)); err != nil {
			return err
		}
		_, err = setJSON(txn, key(pOrgDel, id), true, 0)
		return err
	})
	if err != nil {
		return err
	}
	return s.purgeOrg(id)
}

// resumePurges finishes deletions recorded by a deletion marker.
func (s *Store) resumePurges() error {
	var ids []string
	err := s.view(func(txn Txn) error {
		for _, k := range keysWithPrefix(txn, scanPrefix(pOrgDel), nil, 0) {
			ids = append(ids, lastSegment(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := s.purgeOrg(id); err != nil {
			return err
		}
	}
	return nil
}

// purgeOrg deletes the data scoped to a deleted organization.
func (s *Store) purgeOrg(orgID string) error {
	const op = "delete org"
	// Records outside the org's prefixes, reached through its indexes. The
	// referenced record is checked to belong to the org before it goes.
	if _, err := s.deleteOrgSessions(orgID, ""); err != nil {
		return err
	}
	if _, err := s.forEachKeyBatch(scanPrefix(pAuthnOrg, orgID), func(txn Txn, keys [][]byte) (int, error) {
		for _, k := range keys {
			if _, err := deleteAuthnRequest(txn, orgID, lastSegment(k)); err != nil {
				return 0, err
			}
			if err := del(txn, k); err != nil {
				return 0, err
			}
		}
		return len(keys), nil
	}); err != nil {
		return fmt.Errorf("store: %s %q: %w", op, orgID, err)
	}
	// Pending invitation links, keyed by their token's hash, through
	// the org's per-user markers.
	if _, err := s.forEachKeyBatch(scanPrefix(pLInvUser, orgID), func(txn Txn, keys [][]byte) (int, error) {
		return len(keys), deleteInvitations(txn, keys)
	}); err != nil {
		return fmt.Errorf("store: %s %q: %w", op, orgID, err)
	}
	for _, p := range []string{pDom, pUser, pUName, pUExt, pUMail, pGrp, pGName, pGExt, pGMem, pSessOrg, pSessUser, pSessName, pAuthnOrg, pUDel, pSignIn, pFlash} {
		if err := s.deletePrefix(scanPrefix(p, orgID)); err != nil {
			return fmt.Errorf("store: %s %q: %w", op, orgID, err)
		}
	}
	return s.update(op, func(txn Txn) error {
		// The marker goes with the stripes, so that an organization
		// created again with this ID starts from zero.
		keys := [][]byte{key(pCount, "users", orgID), key(pCount, "groups", orgID), usageMarker(orgID), key(pOrgDel, orgID)}
		for i := range usageStripes {
			keys = append(keys, usageKey(orgID, i))
		}
		for _, k := range keys {
			if err := del(txn, k); err != nil {
				return err
			}
		}
		return nil
	})
}

// deletePrefix deletes every key under p, purgeBatch keys per transaction.
func (s *Store) deletePrefix(p []byte) error {
	_, err := s.forEachKeyBatch(p, func(txn Txn, keys [][]byte) (int, error) {
		for _, k := range keys {
			if err := del(txn, k); err != nil {
				return 0, err
			}
		}
		return len(keys), nil
	})
	return err
}

// forEachKeyBatch calls fn with successive batches of the keys under p, each
// batch in its own read-write transaction that commits fn's writes. It
// resumes after the last key of the previous batch, so fn need not delete
// the keys it is given. It returns the sum of fn's counts over the
// committed batches.
func (s *Store) forEachKeyBatch(p []byte, fn func(txn Txn, keys [][]byte) (int, error)) (int, error) {
	var from []byte
	total := 0
	for {
		var n, counted int
		var next []byte
		err := s.update("batch", func(txn Txn) error {
			keys := keysWithPrefix(txn, p, from, purgeBatch)
			n = len(keys)
			if n == 0 {
				return nil
			}
			var err error
			if counted, err = fn(txn, keys); err != nil {
				return err
			}
			next = append(keys[n-1], 0) // the smallest key after the last one
			return nil
		})
		if err != nil {
			if errors.Is(err, ErrTxnTooBig) {
				return total, fmt.Errorf("store: batch too large: %w", err)
			}
			return total, err
		}
		total += counted
		if n < purgeBatch {
			return total, nil
		}
		from = next
	}
}
