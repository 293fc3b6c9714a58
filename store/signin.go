package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
)

// ErrAnswered means the AuthnRequest a sign-in answers is unknown,
// expired, already answered or another organization's. It matches
// ErrNotFound as well.
var ErrAnswered = fmt.Errorf("authn request not outstanding: %w", ErrNotFound)

// ConsumeSignIn is the only write of an admitted SAML Test sign-in (see
// CompleteSignIn for the others): in one transaction it deletes the
// outstanding AuthnRequest requestID of orgID (unless requestID is empty,
// for an IdP-initiated sign-in) and records replayKey as used until
// replayUntil (see ConsumeOnce). Either both happen or neither: a sign-in
// refused here leaves the request outstanding and the assertion
// unrecorded. ErrAnswered (an ErrNotFound) if the request is unknown,
// expired, already consumed or another org's; ErrReplayed if replayKey is
// recorded. It returns the consumed request (nil when requestID is empty).
func (s *Store) ConsumeSignIn(orgID, requestID, replayKey string, replayUntil time.Time) (*AuthnRequest, error) {
	const op = "consume sign-in"
	if err := checkConsume(op, orgID, replayKey, replayUntil); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	var req *AuthnRequest
	err := s.update(op, func(txn Txn) error {
		var err error
		req, err = s.consumeSignIn(txn, op, orgID, requestID, replayKey, replayUntil)
		return err
	})
	if err != nil {
		return nil, err
	}
	return req, nil
}

func checkConsume(op, orgID, replayKey string, replayUntil time.Time) error {
	if err := need(op, "org id", orgID, "replay key", replayKey); err != nil {
		return err
	}
	if replayUntil.IsZero() {
		return invalid(op, "zero replay expiry")
	}
	return nil
}

// consumeSignIn is ConsumeSignIn's transaction.
func (s *Store) consumeSignIn(txn Txn, op, orgID, requestID, replayKey string, replayUntil time.Time) (*AuthnRequest, error) {
	t := now()
	var req *AuthnRequest
	if requestID != "" {
		r, err := deleteAuthnRequest(txn, orgID, requestID)
		if err != nil {
			return nil, err
		}
		if r == nil || !t.Before(r.ExpiresAt) {
			return nil, fmt.Errorf("store: %s: request %q: %w", op, requestID, ErrAnswered)
		}
		req = r
	}
	return req, s.consumeReplay(txn, op, replayKey, replayUntil, t)
}

// SignIn is everything an admitted SAML sign-in writes; CompleteSignIn
// writes it in one transaction.
type SignIn struct {
	OrgID string
	// RequestID is the AuthnRequest answered ("" for IdP-initiated);
	// ReplayKey and ReplayUntil record the assertion as used (see
	// ConsumeSignIn).
	RequestID   string
	ReplayKey   string
	ReplayUntil time.Time

	// NewUser, when set, is created as CreateUser would with UserOpts
	// and Unmatched: if another user of the org has its userName, its
	// externalId or one of its addresses by then (provisioned, or signed
	// in on another replica, since the caller looked), the sign-in fails
	// with ErrMatched and writes nothing, for the caller to look the user
	// up again. Otherwise the user UserID is changed by UpdateUser as
	// UpdateUser would with UserOpts.
	NewUser    *User
	UserID     string
	UpdateUser func(*User) error
	UserOpts   []WriteOption

	// EndSession, when set, is the record ID of the session the browser
	// had; it ends with the sign-in, if it still exists, whoever it was
	// for.
	EndSession string
	// Session is the new session; its OrgID and UserID are the sign-in's.
	Session *Session
	// Audit and Attempt, when set, are recorded as AppendAudit and
	// AddSignInAttempt would (see CompleteSignIn for the attempts' cap).
	Audit   *AuditEvent
	Attempt *SignInAttempt
}

// SignedIn is what CompleteSignIn wrote.
type SignedIn struct {
	Request *AuthnRequest // the request answered; nil for IdP-initiated
	User    *User         // the user as stored
	Session *Session
	Audit   *AuditEvent
	Attempt *SignInAttempt
}

// signInPruneEvery is how many sign-ins CompleteSignIn records per
// organization before one of them also drops the attempts beyond the
// newest MaxSignInAttempts. Pruning reads every attempt key of the
// organization, so doing it in each sign-in's transaction would make
// concurrent sign-ins of one organization conflict with each other and
// run again; amortized, the trail holds fewer than this many more per
// gateway process on the store (still bounded, and ListSignInAttempts
// shows the newest MaxSignInAttempts). Refusals, which anyone can cause,
// still prune on every write.
const signInPruneEvery = 32

// signInPrunes counts CompleteSignIn's attempts per organization since
// its last prune.
type signInPrunes struct {
	mu    sync.Mutex
	count map[string]int
}

// due counts one more attempt of orgID and reports whether it is the one
// that prunes.
func (p *signInPrunes) due(orgID string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.count == nil {
		p.count = make(map[string]int)
	}
	p.count[orgID]++
	if p.count[orgID] < signInPruneEvery {
		return false
	}
	delete(p.count, orgID)
	return true
}

// CompleteSignIn writes an admitted SAML sign-in in one transaction, so
// that it costs one synced commit and either all of it happens or none
// (the sign-in's writes as separate commits cost five syncs; Badger syncs
// its log once per transaction even when it writes several together, so
// concurrent sign-ins do not share them): it consumes the
// AuthnRequest and records the assertion (as ConsumeSignIn), creates or
// updates the user, ends the browser's previous session, starts the new
// one (with its SAML session index), and appends the audit event and the
// sign-in attempt. Every check of every part runs before the transaction
// commits; a refused sign-in changes nothing, so the caller records its
// refusal as for any other.
//
// Errors: ErrAnswered, ErrReplayed as ConsumeSignIn; ErrMatched for a
// new user that matches one on file (see SignIn.NewUser); ErrQuota,
// ErrUserLimit, ErrConflict from the user's write as CreateUser and
// UpdateUser; ErrNotFound when
// the org or the user to update is gone; ErrInvalid for a malformed
// SignIn. si is not changed; the records as written are returned.
func (s *Store) CompleteSignIn(si *SignIn) (*SignedIn, error) {
	const op = "complete sign-in"
	if si == nil {
		return nil, invalid(op, "nil sign-in")
	}
	if err := checkConsume(op, si.OrgID, si.ReplayKey, si.ReplayUntil); err != nil {
		return nil, err
	}
	var nu *User
	switch {
	case si.NewUser != nil && (si.UserID != "" || si.UpdateUser != nil):
		return nil, invalid(op, "both a new user and an update")
	case si.NewUser != nil:
		if si.NewUser.OrgID != si.OrgID {
			return nil, invalid(op, "new user of organization %q", si.NewUser.OrgID)
		}
		if err := checkUser(op, si.NewUser); err != nil {
			return nil, err
		}
		c := *si.NewUser
		if c.ID == "" {
			c.ID = uuid.NewString()
		}
		if c.Created.IsZero() {
			c.Created = now()
		}
		if c.Updated.IsZero() {
			c.Updated = c.Created
		}
		nu = &c
	case si.UserID == "" || si.UpdateUser == nil:
		return nil, invalid(op, "neither a new user nor an update")
	}
	userID := si.UserID
	if nu != nil {
		userID = nu.ID
	}
	if si.Session == nil {
		return nil, invalid(op, "nil session")
	}
	if si.Session.OrgID != si.OrgID || (si.Session.UserID != "" && si.Session.UserID != userID) {
		return nil, invalid(op, "session for another user")
	}
	sess := *si.Session
	sess.UserID = userID
	c, err := newSession(op, &sess)
	if err != nil {
		return nil, err
	}
	out := &SignedIn{Session: c}
	if si.Audit != nil {
		if si.Audit.OrgID != si.OrgID {
			return nil, invalid(op, "audit event of organization %q", si.Audit.OrgID)
		}
		if out.Audit, err = newAuditEvent(op, si.Audit); err != nil {
			return nil, err
		}
	}
	if si.Attempt != nil {
		if si.Attempt.OrgID != si.OrgID {
			return nil, invalid(op, "sign-in attempt of organization %q", si.Attempt.OrgID)
		}
		if out.Attempt, err = newSignInAttempt(op, si.Attempt); err != nil {
			return nil, err
		}
	}
	prune := out.Attempt != nil && s.signIns.due(si.OrgID)
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	var mailPrefixes [][]byte
	if nu != nil {
		mailPrefixes = mailPrefixesOf(nu)
	}
	var stored []byte
	err = s.update(op, func(txn Txn) error {
		req, err := s.consumeSignIn(txn, op, si.OrgID, si.RequestID, si.ReplayKey, si.ReplayUntil)
		if err != nil {
			return err
		}
		out.Request = req
		if err := requireOrg(txn, op, si.OrgID); err != nil {
			return err
		}
		if nu != nil {
			u := *nu
			// What the check and the creation read, in one exchange.
			txn, err := prefetchSet(txn, readSet{keys: createUserReads(&u), prefixes: mailPrefixes})
			if err != nil {
				return err
			}
			// The caller looked the user up before; someone may have
			// been created or provisioned with this identity since.
			if err := s.checkUnmatched(txn, &u, nil, mailPrefixes); err != nil {
				return err
			}
			if err := checkUserLimit(txn, op, u.OrgID, writeOpts(si.UserOpts).maxUsers); err != nil {
				return err
			}
			use := newUsage(u.OrgID, si.UserOpts)
			if err := putNewUser(txn, use, op, &u); err != nil {
				return err
			}
			if err := s.charge(txn, use, u.ID); err != nil {
				return err
			}
			if stored, err = jsonOf(op, &u); err != nil {
				return err
			}
		} else if stored, err = s.updateUser(txn, op, si.OrgID, si.UserID, si.UpdateUser, si.UserOpts); err != nil {
			return err
		}
		if si.EndSession != "" {
			if err := deleteSession(txn, op, si.EndSession); err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		if err := putSession(txn, op, c); err != nil {
			return err
		}
		if out.Audit != nil {
			if _, err := setJSON(txn, auditKey(out.Audit), out.Audit, 0); err != nil {
				return err
			}
		}
		if out.Attempt != nil {
			if err := putSignInAttempt(txn, op, out.Attempt); err != nil {
				return err
			}
			if prune {
				return pruneSignInAttempts(txn, si.OrgID)
			}
		}
		return nil
	})
	if err != nil {
		if out.Audit != nil {
			s.auditWriteFailed([]*AuditEvent{out.Audit})
		}
		return nil, err
	}
	if si.EndSession != "" {
		s.touchMu.Lock()
		delete(s.touches, si.EndSession)
		s.touchMu.Unlock()
	}
	if out.Audit != nil {
		s.countAuditAppends([]*AuditEvent{out.Audit})
	}
	out.User = new(User)
	if err := json.Unmarshal(stored, out.User); err != nil {
		return nil, fmt.Errorf("store: %s: decode user: %w", op, err)
	}
	return out, nil
}

func jsonOf(op string, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("store: %s: encode: %w", op, err)
	}
	return b, nil
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
