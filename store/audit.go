package store

import (
	"encoding/json"
	"fmt"
	"math"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"
)

// auditKey orders an org's events newest first: the time segment is the
// bitwise complement of the Unix nanoseconds, fixed width in hex.
func auditKey(e *AuditEvent) []byte {
	ns := max(e.Time.UnixNano(), 0)
	return key(pAudit, e.OrgID, fmt.Sprintf("%016x", math.MaxUint64-uint64(ns)), e.ID)
}

// AppendAudit records an event. It assigns ID when empty and Time when
// zero; e is updated in place on success. Events with an empty OrgID are
// gateway-wide.
func (s *Store) AppendAudit(e *AuditEvent) error {
	const op = "append audit"
	if e == nil {
		return invalid(op, "nil event")
	}
	if err := need(op, "action", e.Action); err != nil {
		return err
	}
	c := *e
	if c.ID == "" {
		c.ID = uuid.NewString()
	}
	if c.Time.IsZero() {
		c.Time = now()
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	err := s.update(op, func(txn *badger.Txn) error {
		_, err := setJSON(txn, auditKey(&c), &c, 0)
		return err
	})
	if err != nil {
		return err
	}
	*e = c
	return nil
}

// ListAudit returns the org's most recent events, newest first, at most
// limit of them (limit <= 0 means 100). orgID "" lists the gateway-wide
// events only, not every org's.
func (s *Store) ListAudit(orgID string, limit int) ([]*AuditEvent, error) {
	if limit <= 0 {
		limit = defaultAuditLimit
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	out := []*AuditEvent{}
	err := s.view(func(txn *badger.Txn) error {
		// With orgID "" the prefix is "audit//": no org ID is empty, so it
		// holds the gateway-wide events alone.
		return listJSON(txn, scanPrefix(pAudit, orgID), 0, limit, func(b []byte) error {
			e := new(AuditEvent)
			if err := json.Unmarshal(b, e); err != nil {
				return err
			}
			out = append(out, e)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// GetOrCreateSecret returns the gateway-wide secret called name, creating it
// with generate the first time. Concurrent first callers all get the same
// value: the check and the write are one transaction, and a loser of the
// race reads the winner's value. generate may be called even if its result
// ends up unused. Secrets are stored unencrypted, like the rest of the
// database: protect the directory.
func (s *Store) GetOrCreateSecret(name string, generate func() ([]byte, error)) ([]byte, error) {
	const op = "get or create secret"
	if err := need(op, "name", name); err != nil {
		return nil, err
	}
	if generate == nil {
		return nil, invalid(op, "nil generator")
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	k := key(pSecret, name)
	var val, fresh []byte
	err := s.update(op, func(txn *badger.Txn) error {
		switch err := getJSON(txn, k, &val); {
		case err == nil:
			return nil
		case err != ErrNotFound:
			return err
		}
		if fresh == nil { // generate once, even if the transaction is retried
			var err error
			if fresh, err = generate(); err != nil {
				return fmt.Errorf("store: %s %q: generate: %w", op, name, err)
			}
			if len(fresh) == 0 {
				return invalid(op, "generator returned an empty secret for %q", name)
			}
		}
		val = fresh
		_, err := setJSON(txn, k, fresh, 0)
		return err
	})
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), val...), nil
}
