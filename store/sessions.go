package store

import (
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"
)

// sessRef is the value of a sessorg index key: enough to filter by method
// and to find the sessuser key without reading the session.
type sessRef struct {
	UserID     string `json:"u"`
	AuthMethod string `json:"m"`
}

// CreateSession stores a new session. ID, OrgID and UserID are required and
// ExpiresAt must lie in the future: it becomes the record's TTL. Created and
// LastSeen default to now. The org and the user must exist (ErrNotFound),
// and the check conflicts with a concurrent DeleteUser or DeleteOrg, so a
// session can never outlive its user. ErrExists if the ID is taken.
func (s *Store) CreateSession(sess *Session) error {
	const op = "create session"
	c, err := newSession(op, sess)
	if err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	err = s.update(op, func(txn Txn) error { return putSession(txn, op, c) })
	if err != nil {
		return err
	}
	*sess = *c
	return nil
}

// newSession checks a session to create and fills in its defaults.
func newSession(op string, sess *Session) (*Session, error) {
	if sess == nil {
		return nil, invalid(op, "nil session")
	}
	if err := need(op, "session id", sess.ID, "org id", sess.OrgID, "user id", sess.UserID); err != nil {
		return nil, err
	}
	t := now()
	if !sess.ExpiresAt.After(t) {
		return nil, invalid(op, "expiry %s is not in the future", sess.ExpiresAt)
	}
	c := *sess
	c.Groups = slices.Clone(c.Groups)
	if c.Created.IsZero() {
		c.Created = t
	}
	if c.LastSeen.IsZero() {
		c.LastSeen = c.Created
	}
	return &c, nil
}

// putSession is CreateSession's transaction.
func putSession(txn Txn, op string, c *Session) error {
	ttl := ttlSeconds(c.ExpiresAt)
	if err := requireOrg(txn, op, c.OrgID); err != nil {
		return err
	}
	if ok, err := exists(txn, key(pUser, c.OrgID, c.UserID)); err != nil {
		return err
	} else if !ok {
		return notFound(op, "user", c.UserID)
	}
	k := key(pSess, c.ID)
	if ok, err := exists(txn, k); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("store: %s: %w", op, ErrExists)
	}
	if _, err := setJSON(txn, k, c, ttl); err != nil {
		return err
	}
	if _, err := setJSON(txn, key(pSessOrg, c.OrgID, c.ID), sessRef{c.UserID, c.AuthMethod}, ttl); err != nil {
		return err
	}
	if _, err := setJSON(txn, key(pSessUser, c.OrgID, c.UserID, c.ID), true, ttl); err != nil {
		return err
	}
	if c.NameID != "" {
		_, err := setJSON(txn, sessNameKey(c), true, ttl)
		return err
	}
	return nil
}

// GetSession returns the session; ErrNotFound if it does not exist or has
// expired. LastSeen includes touches not yet written to disk.
func (s *Store) GetSession(id string) (*Session, error) {
	const op = "get session"
	if err := need(op, "session id", id); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	sess := new(Session)
	err := s.view(func(txn Txn) error {
		if err := getJSON(txn, key(pSess, id), sess); err != nil {
			if err == ErrNotFound {
				return fmt.Errorf("store: %s: %w", op, ErrNotFound)
			}
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Badger's TTL has one-second granularity; the record's own expiry is exact.
	if !time.Now().Before(sess.ExpiresAt) {
		return nil, fmt.Errorf("store: %s: expired: %w", op, ErrNotFound)
	}
	s.touchMu.Lock()
	for _, m := range []map[string]time.Time{s.flushing, s.touches} {
		if at, ok := m[id]; ok && at.After(sess.LastSeen) {
			sess.LastSeen = at
		}
	}
	s.touchMu.Unlock()
	return sess, nil
}

// TouchSession moves the session's LastSeen forward to at (now if zero).
//
// Unlike every other write, a touch is not synced when TouchSession returns:
// touches are buffered in memory and written together, in one synced
// transaction, about once a second and on Close. A crash can lose the last
// second of touches, which only makes a session look idle slightly earlier.
// GetSession already reports buffered touches. Touches of sessions that do
// not exist (or are deleted before the write) are dropped silently.
func (s *Store) TouchSession(id string, at time.Time) error {
	if err := need("touch session", "session id", id); err != nil {
		return err
	}
	pending, err := s.bufferTouch(&s.touches, id, at)
	if err != nil {
		return err
	}
	if pending >= maxPendingTouches {
		select {
		case s.flushNow <- struct{}{}:
		default:
		}
	}
	return nil
}

// bufferTouch records at (now if zero) for k in *buf, one of the touch
// buffers guarded by touchMu, keeping the latest time; it returns how many
// touches that buffer holds. buf points at the Store's field, read under
// the lock, because the flusher swaps the buffers.
func (s *Store) bufferTouch(buf *map[string]time.Time, k string, at time.Time) (int, error) {
	if at.IsZero() {
		at = now()
	}
	at = at.UTC().Round(0)
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	s.touchMu.Lock()
	defer s.touchMu.Unlock()
	m := *buf
	if prev, ok := m[k]; !ok || at.After(prev) {
		m[k] = at
	}
	return len(m), nil
}

func (s *Store) touchFlusher() {
	defer s.wg.Done()
	t := time.NewTicker(touchFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		case <-s.flushNow:
		}
		s.flushTouches()
		s.flushSCIMTouches()
	}
}

// flushTouches writes the buffered touches. It runs on the flusher
// goroutine and once more in Close, never concurrently.
func (s *Store) flushTouches() {
	s.touchMu.Lock()
	batch := s.touches
	if len(batch) == 0 {
		s.touchMu.Unlock()
		return
	}
	s.touches = make(map[string]time.Time)
	s.flushing = batch
	s.touchMu.Unlock()

	ids := make([]string, 0, len(batch))
	for id := range batch {
		ids = append(ids, id)
	}
	for chunk := range slices.Chunk(ids, touchesPerTxn) {
		err := s.updateTouch("touch sessions", func(txn Txn) error {
			t := time.Now()
			for _, id := range chunk {
				k := key(pSess, id)
				sess := new(Session)
				if err := getJSON(txn, k, sess); err != nil {
					if err == ErrNotFound {
						continue
					}
					return err
				}
				at := batch[id]
				if !at.After(sess.LastSeen) || !t.Before(sess.ExpiresAt) {
					continue
				}
				sess.LastSeen = at
				if _, err := setJSON(txn, k, sess, ttlSeconds(sess.ExpiresAt)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			s.log.Warn("writing session touches failed", zap.Int("sessions", len(chunk)), zap.Error(err))
		}
	}

	s.touchMu.Lock()
	s.flushing = nil
	s.touchMu.Unlock()
}

// DeleteSession removes the session (sign-out). ErrNotFound if there is no
// such session.
func (s *Store) DeleteSession(id string) error {
	const op = "delete session"
	if err := need(op, "session id", id); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	err := s.update(op, func(txn Txn) error { return deleteSession(txn, op, id) })
	s.touchMu.Lock()
	delete(s.touches, id)
	s.touchMu.Unlock()
	return err
}

// deleteSession is DeleteSession's transaction.
func deleteSession(txn Txn, op, id string) error {
	sess := new(Session)
	if err := getJSON(txn, key(pSess, id), sess); err != nil {
		if err == ErrNotFound {
			return fmt.Errorf("store: %s: %w", op, ErrNotFound)
		}
		return err
	}
	if err := deleteSessionNameKey(txn, sess); err != nil {
		return err
	}
	return deleteSessionKeys(txn, sess.OrgID, sess.UserID, id)
}

func deleteSessionKeys(txn Txn, orgID, userID, id string) error {
	for _, k := range [][]byte{key(pSess, id), key(pSessOrg, orgID, id), key(pSessUser, orgID, userID, id)} {
		if err := del(txn, k); err != nil {
			return err
		}
	}
	return nil
}

// deleteSessionsByUser deletes the user's sessions found through the
// sessuser index and returns how many there were.
func deleteSessionsByUser(txn Txn, orgID, userID string) (int, error) {
	n := 0
	for _, k := range keysWithPrefix(txn, scanPrefix(pSessUser, orgID, userID), nil, 0) {
		id := lastSegment(k)
		sess := new(Session)
		switch err := getJSON(txn, key(pSess, id), sess); {
		case err == nil:
			// Index and record are written together; still, never delete
			// a session that is not this org's and this user's.
			if sess.OrgID == orgID && sess.UserID == userID {
				if err := del(txn, key(pSess, id)); err != nil {
					return 0, err
				}
				if err := deleteSessionNameKey(txn, sess); err != nil {
					return 0, err
				}
				n++
			}
		case err != ErrNotFound:
			return 0, err
		}
		if err := del(txn, key(pSessOrg, orgID, id)); err != nil {
			return 0, err
		}
		if err := del(txn, k); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// DeleteUserSessions signs the user out everywhere and returns the number of
// sessions removed.
func (s *Store) DeleteUserSessions(orgID, userID string) (int, error) {
	const op = "delete user sessions"
	if err := need(op, "org id", orgID, "user id", userID); err != nil {
		return 0, err
	}
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	var n int
	err := s.update(op, func(txn Txn) error {
		var err error
		n, err = deleteSessionsByUser(txn, orgID, userID)
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// DeleteOrgSessions removes the org's sessions that used authMethod (all of
// them if authMethod is "") and returns how many it removed. Large orgs are
// processed in several transactions.
func (s *Store) DeleteOrgSessions(orgID string, authMethod string) (int, error) {
	if err := need("delete org sessions", "org id", orgID); err != nil {
		return 0, err
	}
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	return s.deleteOrgSessions(orgID, authMethod)
}

func (s *Store) deleteOrgSessions(orgID string, authMethod string) (int, error) {
	n, err := s.forEachKeyBatch(scanPrefix(pSessOrg, orgID), func(txn Txn, keys [][]byte) (int, error) {
		n := 0
		for _, k := range keys {
			var ref sessRef
			if err := getJSON(txn, k, &ref); err != nil {
				if err == ErrNotFound {
					continue
				}
				return 0, err
			}
			if authMethod != "" && ref.AuthMethod != authMethod {
				continue
			}
			id := lastSegment(k)
			sess := new(Session)
			switch err := getJSON(txn, key(pSess, id), sess); {
			case err == nil:
				if sess.OrgID == orgID {
					if err := del(txn, key(pSess, id)); err != nil {
						return 0, err
					}
					if err := deleteSessionNameKey(txn, sess); err != nil {
						return 0, err
					}
					n++
				}
			case err != ErrNotFound:
				return 0, err
			}
			if err := del(txn, k); err != nil {
				return 0, err
			}
			if err := del(txn, key(pSessUser, orgID, ref.UserID, id)); err != nil {
				return 0, err
			}
		}
		return n, nil
	})
	if err != nil {
		return n, fmt.Errorf("store: delete org sessions: %w", err)
	}
	return n, nil
}

// ---- AuthnRequests ----------------------------------------------------------

// PutAuthnRequest remembers an outstanding AuthnRequest until its
// ExpiresAt (required, in the future; it becomes the TTL). Created defaults
// to now. ErrExists if the ID is taken; ErrNotFound if the org does not exist.
func (s *Store) PutAuthnRequest(r *AuthnRequest) error {
	const op = "put authn request"
	if r == nil {
		return invalid(op, "nil request")
	}
	if err := need(op, "request id", r.ID, "org id", r.OrgID, "binding", r.Binding); err != nil {
		return err
	}
	t := now()
	if !r.ExpiresAt.After(t) {
		return invalid(op, "expiry %s is not in the future", r.ExpiresAt)
	}
	c := *r
	if c.Created.IsZero() {
		c.Created = t
	}
	ttl := ttlSeconds(c.ExpiresAt)
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	err := s.update(op, func(txn Txn) error {
		if err := requireOrg(txn, op, c.OrgID); err != nil {
			return err
		}
		k := key(pAuthn, c.ID)
		if ok, err := exists(txn, k); err != nil {
			return err
		} else if ok {
			return fmt.Errorf("store: %s: request %q: %w", op, c.ID, ErrExists)
		}
		if _, err := setJSON(txn, k, &c, ttl); err != nil {
			return err
		}
		if _, err := setJSON(txn, key(pAuthnB, c.Binding, c.ID), true, ttl); err != nil {
			return err
		}
		_, err := setJSON(txn, key(pAuthnOrg, c.OrgID, c.ID), true, ttl)
		return err
	})
	if err != nil {
		return err
	}
	*r = c
	return nil
}

// AuthnRequestsForBinding returns the unexpired outstanding requests tied
// to the browser binding, oldest first.
func (s *Store) AuthnRequestsForBinding(binding string) ([]*AuthnRequest, error) {
	if err := need("authn requests for binding", "binding", binding); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	out := []*AuthnRequest{}
	err := s.view(func(txn Txn) error {
		t := time.Now()
		for _, k := range keysWithPrefix(txn, scanPrefix(pAuthnB, binding), nil, 0) {
			r := new(AuthnRequest)
			if err := getJSON(txn, key(pAuthn, lastSegment(k)), r); err != nil {
				if err == ErrNotFound {
					continue
				}
				return err
			}
			if r.Binding == binding && t.Before(r.ExpiresAt) {
				out = append(out, r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b *AuthnRequest) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// ConsumeAuthnRequest returns the outstanding request and deletes it in the
// same transaction, so that of concurrent callers only one gets it.
// ErrNotFound if it is unknown, expired or already consumed.
func (s *Store) ConsumeAuthnRequest(id string) (*AuthnRequest, error) {
	const op = "consume authn request"
	if err := need(op, "request id", id); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	var r *AuthnRequest
	err := s.update(op, func(txn Txn) error {
		var err error
		r, err = deleteAuthnRequest(txn, "", id)
		return err
	})
	if err != nil {
		return nil, err
	}
	if r == nil || !time.Now().Before(r.ExpiresAt) {
		return nil, notFound(op, "request", id)
	}
	return r, nil
}

// deleteAuthnRequest deletes the request and its index keys and returns it
// (nil if absent). A non-empty orgID restricts it to that org's requests.
func deleteAuthnRequest(txn Txn, orgID, id string) (*AuthnRequest, error) {
	r := new(AuthnRequest)
	if err := getJSON(txn, key(pAuthn, id), r); err != nil {
		if err == ErrNotFound {
			return nil, nil
		}
		return nil, err
	}
	if orgID != "" && r.OrgID != orgID {
		return nil, nil
	}
	for _, k := range [][]byte{key(pAuthn, id), key(pAuthnB, r.Binding, id), key(pAuthnOrg, r.OrgID, id)} {
		if err := del(txn, k); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// ---- replay cache -------------------------------------------------------------

// ConsumeOnce records key as used until expiresAt and fails with an error
// wrapping ErrReplayed if it was already recorded and has not expired. The
// check and the write are one transaction: of concurrent callers with the
// same key exactly one succeeds. The key is kept at least a minute whatever
// expiresAt says, so a caller with a skewed or fake clock still gets replay
// protection.
func (s *Store) ConsumeOnce(replayKey string, expiresAt time.Time) error {
	const op = "consume once"
	if err := need(op, "key", replayKey); err != nil {
		return err
	}
	if expiresAt.IsZero() {
		return invalid(op, "zero expiry")
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	return s.update(op, func(txn Txn) error {
		return s.consumeReplay(txn, op, replayKey, expiresAt, now())
	})
}

// consumeReplay records replayKey as used until expiresAt (at least the
// store's replay floor), failing with ErrReplayed while an earlier use is
// still recorded.
func (s *Store) consumeReplay(txn Txn, op, replayKey string, expiresAt, t time.Time) error {
	k := key(pReplay, replayKey)
	var until time.Time
	switch err := getJSON(txn, k, &until); {
	case err == nil && t.Before(until):
		return fmt.Errorf("store: %s: %w", op, ErrReplayed)
	case err != nil && err != ErrNotFound:
		return err
	}
	until = expiresAt.UTC().Round(0)
	if floor := t.Add(s.replayKeep); until.Before(floor) {
		until = floor
	}
	_, err := setJSON(txn, k, until, ttlSeconds(until))
	return err
}
