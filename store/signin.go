package store

import (
	"fmt"
	"time"
)

// ConsumeSignIn is the first write of an admitted SAML sign-in: in one
// transaction it deletes the outstanding AuthnRequest requestID of orgID
// (unless requestID is empty, for an IdP-initiated sign-in) and records
// replayKey as used until replayUntil (see ConsumeOnce). Either both happen
// or neither: a sign-in refused here leaves the request outstanding and the
// assertion unrecorded. ErrNotFound if the request is unknown, expired,
// already consumed or another org's; ErrReplayed if replayKey is recorded.
// It returns the consumed request (nil when requestID is empty).
func (s *Store) ConsumeSignIn(orgID, requestID, replayKey string, replayUntil time.Time) (*AuthnRequest, error) {
	const op = "consume sign-in"
	if err := need(op, "org id", orgID, "replay key", replayKey); err != nil {
		return nil, err
	}
	if replayUntil.IsZero() {
		return nil, invalid(op, "zero replay expiry")
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	var req *AuthnRequest
	err := s.update(op, func(txn Txn) error {
		t := now()
		req = nil
		if requestID != "" {
			r, err := deleteAuthnRequest(txn, orgID, requestID)
			if err != nil {
				return err
			}
			if r == nil || !t.Before(r.ExpiresAt) {
				return notFound(op, "request", requestID)
			}
			req = r
		}
		return s.consumeReplay(txn, op, replayKey, replayUntil, t)
	})
	if err != nil {
		return nil, err
	}
	return req, nil
}

// ReplayRecorded reports whether replayKey is recorded as used (by
// ConsumeOnce or ConsumeSignIn) and not expired. It writes nothing, so a
// validator can refuse a replay before deciding anything else.
func (s *Store) ReplayRecorded(replayKey string) (bool, error) {
	const op = "replay recorded"
	if err := need(op, "key", replayKey); err != nil {
		return false, err
	}
	if err := s.enter(); err != nil {
		return false, err
	}
	defer s.leave()
	var used bool
	err := s.view(func(txn Txn) error {
		var until time.Time
		switch err := getJSON(txn, key(pReplay, replayKey), &until); {
		case err == nil:
			used = time.Now().Before(until)
		case err != ErrNotFound:
			return err
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("store: %s: %w", op, err)
	}
	return used, nil
}

// PendingAuthnRequest returns the outstanding request without consuming
// it; ErrNotFound if it is unknown, expired or consumed.
func (s *Store) PendingAuthnRequest(id string) (*AuthnRequest, error) {
	const op = "pending authn request"
	if err := need(op, "request id", id); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	r := new(AuthnRequest)
	err := s.view(func(txn Txn) error {
		return wrapNotFound(getJSON(txn, key(pAuthn, id), r), op, "request", id)
	})
	if err != nil {
		return nil, err
	}
	if !time.Now().Before(r.ExpiresAt) {
		return nil, notFound(op, "request", id)
	}
	return r, nil
}

// CountOrgSessions counts the org's live session records.
func (s *Store) CountOrgSessions(orgID string) (int, error) {
	const op = "count org sessions"
	if err := need(op, "org id", orgID); err != nil {
		return 0, err
	}
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	n := 0
	err := s.view(func(txn Txn) error {
		n = len(keysWithPrefix(txn, scanPrefix(pSessOrg, orgID), nil, 0))
		return nil
	})
	return n, err
}
