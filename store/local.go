package store

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// This file holds what local accounts (users with a password: the org
// owner, invited users, the backup login) need beyond plain user records:
// one-time set-password links, a gateway-wide index from an email address
// to the local accounts that use it, and the transactions that keep the
// backup login designation consistent with the accounts.
//
// Keys (in addition to the layout in doc.go):
//
//	linv/<token hash>              Invitation, Badger TTL = ExpiresAt
//	linvu/<org>/<user>/<hash>      expiry time, same TTL (a user's pending links)
//	lmail/<email key>/<org>        user ID of the org's local account with that address
//
// lmail and linv are not scoped by organization in their first segment, so
// DeleteOrg's prefix purge does not reach them: it deletes an org's linv
// entries through their linvu markers, and leaves lmail entries, which
// every reader checks against the org, the user and the address (a stale
// entry is skipped) and CreateOrgWithOwner overwrites for a re-created
// org.

// Key prefixes of local accounts.
const (
	pLInv     = "linv"
	pLInvUser = "linvu"
	pLMail    = "lmail"
)

// Purposes of an Invitation.
const (
	InviteOwner = "owner"  // the owner's first link, issued with the org
	InviteUser  = "invite" // an org admin or the operator invited a local user
	InviteReset = "reset"  // the operator re-issued a link (reset-backup)
)

// Roles of local accounts.
const (
	RoleAdmin = "admin"
	RoleUser  = "user"
)

// Invitation is a one-time set-password link of a local account. Only the
// SHA-256 of the link's token is stored, so a copy of the database holds
// no usable link.
type Invitation struct {
	TokenHash string    `json:"token_hash"` // hex SHA-256 of the token
	OrgID     string    `json:"org_id"`
	UserID    string    `json:"user_id"`
	Purpose   string    `json:"purpose"` // InviteOwner | InviteUser | InviteReset
	CreatedBy string    `json:"created_by,omitempty"`
	Created   time.Time `json:"created"`
	ExpiresAt time.Time `json:"expires_at"`
}

func checkInvitation(op string, inv *Invitation, t time.Time) error {
	if inv == nil {
		return invalid(op, "nil invitation")
	}
	if b, err := hex.DecodeString(inv.TokenHash); err != nil || len(b) != 32 {
		return invalid(op, "token hash must be a hex SHA-256")
	}
	switch inv.Purpose {
	case InviteOwner, InviteUser, InviteReset:
	default:
		return invalid(op, "invitation purpose %q", inv.Purpose)
	}
	if !inv.ExpiresAt.After(t) {
		return invalid(op, "invitation expiry %s is not in the future", inv.ExpiresAt)
	}
	return nil
}

// checkLocalUser checks what every local account needs: the local source,
// a role, and exactly one address that is also its userName, since the
// address is how the account signs in.
func checkLocalUser(op string, u *User) error {
	if u == nil {
		return invalid(op, "nil user")
	}
	if u.Source != SourceLocal {
		return invalid(op, "source %q is not %q", u.Source, SourceLocal)
	}
	if u.Role != RoleAdmin && u.Role != RoleUser {
		return invalid(op, "role %q", u.Role)
	}
	if len(u.Emails) != 1 || userKey(u.Emails[0].Value) != userKey(u.UserName) {
		return invalid(op, "a local account has one email address, equal to its userName")
	}
	return checkUser(op, u)
}

// localEmail is the address a local account signs in with.
func localEmail(u *User) string { return userKey(u.UserName) }

// putInvitation writes inv and its per-user marker. The user's other
// pending links are revoked first: only the newest link works.
func putInvitation(txn Txn, inv *Invitation) error {
	if err := revokeInvitations(txn, inv.OrgID, inv.UserID); err != nil {
		return err
	}
	k := key(pLInv, inv.TokenHash)
	if ok, err := exists(txn, k); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("store: invitation: %w", ErrExists)
	}
	ttl := ttlSeconds(inv.ExpiresAt)
	if _, err := setJSON(txn, k, inv, ttl); err != nil {
		return err
	}
	_, err := setJSON(txn, key(pLInvUser, inv.OrgID, inv.UserID, inv.TokenHash), inv.ExpiresAt, ttl)
	return err
}

// revokeInvitations deletes every pending link of the user.
func revokeInvitations(txn Txn, orgID, userID string) error {
	return deleteInvitations(txn, keysWithPrefix(txn, scanPrefix(pLInvUser, orgID, userID), nil, 0))
}

// deleteInvitations deletes the links that per-user markers (linvu keys)
// point at, and the markers.
func deleteInvitations(txn Txn, markers [][]byte) error {
	for _, mk := range markers {
		if err := del(txn, key(pLInv, lastSegment(mk))); err != nil {
			return err
		}
		if err := del(txn, mk); err != nil {
			return err
		}
	}
	return nil
}

// putNewOrg writes a new organization record and its existence marker,
// with CreateOrg's checks.
func putNewOrg(txn Txn, op string, o *Org) error {
	if ok, err := exists(txn, key(pOrgDel, o.ID)); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("store: %s: organization %q is still being deleted: %w", op, o.ID, ErrConflict)
	}
	if ok, err := exists(txn, key(pOrg, o.ID)); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("store: %s: organization %q: %w", op, o.ID, ErrExists)
	}
	if _, err := setJSON(txn, key(pOrg, o.ID), o, 0); err != nil {
		return err
	}
	_, err := setJSON(txn, key(pOrgLive, o.ID), true, 0)
	return err
}

// prepareLocalUser fills in a new local account's ID and times.
func prepareLocalUser(u *User, t time.Time) User {
	c := *u
	if c.ID == "" {
		c.ID = uuid.NewString()
	}
	if c.Created.IsZero() {
		c.Created = t
	}
	if c.Updated.IsZero() {
		c.Updated = c.Created
	}
	c.Emails = slices.Clone(c.Emails)
	return c
}

// CreateOrgWithOwner creates an organization together with its owner's
// local account, designated as the backup login, and the owner's first
// set-password link, in one transaction: an organization never exists
// without the account that can configure it. o is checked as CreateOrg
// checks it, owner must be a local account (Source local, a role, one
// email equal to its userName), inv must have a token hash and a future
// expiry; its OrgID and UserID are filled in. o, owner and inv are updated
// in place on success. ErrExists if the org ID is taken.
func (s *Store) CreateOrgWithOwner(o *Org, owner *User, inv *Invitation) error {
	const op = "create org with owner"
	if o == nil {
		return invalid(op, "nil org")
	}
	if !orgIDPattern.MatchString(o.ID) {
		return invalid(op, "id %q must match %s", o.ID, orgIDPattern)
	}
	t := now()
	if err := checkInvitation(op, inv, t); err != nil {
		return err
	}
	co := *o
	if co.State == "" {
		co.State = OrgInactive
	}
	if !validOrgState(co.State) {
		return invalid(op, "state %q", co.State)
	}
	if co.Created.IsZero() {
		co.Created = t
	}
	if co.Updated.IsZero() {
		co.Updated = co.Created
	}
	if owner == nil {
		return invalid(op, "nil owner")
	}
	cu := prepareLocalUser(owner, t)
	cu.OrgID = co.ID
	if err := checkLocalUser(op, &cu); err != nil {
		return err
	}
	co.BackupLogin = cu.ID
	ci := *inv
	ci.OrgID, ci.UserID = co.ID, cu.ID
	if ci.Created.IsZero() {
		ci.Created = t
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	err := s.update(op, func(txn Txn) error {
		if err := putNewOrg(txn, op, &co); err != nil {
			return err
		}
		use := newUsage(co.ID, nil)
		if err := putNewUser(txn, use, op, &cu); err != nil {
			return err
		}
		if _, err := setJSON(txn, key(pLMail, localEmail(&cu), co.ID), cu.ID, 0); err != nil {
			return err
		}
		if err := putInvitation(txn, &ci); err != nil {
			return err
		}
		return s.charge(txn, use, cu.ID)
	})
	if err != nil {
		return err
	}
	*o, *owner, *inv = co, cu, ci
	return nil
}

// CreateLocalUser adds a local account to u.OrgID together with its first
// set-password link (inv; its OrgID and UserID are filled in). u is
// checked as CreateOrgWithOwner checks the owner. ErrConflict if the org
// already has a user with that userName or externalId; ErrNotFound if the
// org does not exist. u and inv are updated in place on success.
func (s *Store) CreateLocalUser(u *User, inv *Invitation) error {
	const op = "create local user"
	if err := checkLocalUser(op, u); err != nil {
		return err
	}
	if err := checkInvitation(op, inv, now()); err != nil {
		return err
	}
	var ci Invitation
	err := s.createUser(op, u, func(txn Txn, _ *usage, c *User) error {
		if _, err := setJSON(txn, key(pLMail, localEmail(c), c.OrgID), c.ID, 0); err != nil {
			return err
		}
		ci = *inv
		ci.OrgID, ci.UserID = c.OrgID, c.ID
		if ci.Created.IsZero() {
			ci.Created = now()
		}
		return putInvitation(txn, &ci)
	}, nil)
	if err != nil {
		return err
	}
	*inv = ci
	return nil
}

// IssueInvitation stores a new set-password link for an existing local
// account (inv.OrgID, inv.UserID), revoking the account's earlier links,
// and changes the account's CredVersion: a reset revokes what was bound
// to the old credentials, and writing the account makes two links issued
// at the same moment conflict, so that the one committed second sees and
// revokes the first (scanning the links alone would not: neither
// transaction would read a key the other writes). ErrNotFound if the org
// or user does not exist; ErrInvalid if the user is not a local account.
func (s *Store) IssueInvitation(inv *Invitation) error {
	const op = "issue invitation"
	t := now()
	if err := checkInvitation(op, inv, t); err != nil {
		return err
	}
	if err := need(op, "org id", inv.OrgID, "user id", inv.UserID); err != nil {
		return err
	}
	c := *inv
	if c.Created.IsZero() {
		c.Created = t
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	err := s.update(op, func(txn Txn) error {
		if err := requireOrg(txn, op, c.OrgID); err != nil {
			return err
		}
		u := new(User)
		if err := getJSON(txn, key(pUser, c.OrgID, c.UserID), u); err != nil {
			return wrapNotFound(err, op, "user", c.UserID)
		}
		if u.Source != SourceLocal {
			return invalid(op, "user %q is not a local account", c.UserID)
		}
		u.CredVersion++
		u.Updated = t
		// Only the version changes, so the user's indexes stay as they are.
		use := newUsage(c.OrgID, nil)
		if _, err := use.set(txn, key(pUser, c.OrgID, c.UserID), u); err != nil {
			return err
		}
		if err := putInvitation(txn, &c); err != nil {
			return err
		}
		return s.charge(txn, use, c.UserID)
	})
	if err != nil {
		return err
	}
	*inv = c
	return nil
}

// GetInvitation returns the pending link with this token hash; ErrNotFound
// if there is none, it expired, or it was used.
func (s *Store) GetInvitation(tokenHash string) (*Invitation, error) {
	const op = "get invitation"
	if err := need(op, "token hash", tokenHash); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	inv := new(Invitation)
	err := s.view(func(txn Txn) error {
		return liveInvitation(txn, op, tokenHash, inv)
	})
	if err != nil {
		return nil, err
	}
	return inv, nil
}

func liveInvitation(txn Txn, op, tokenHash string, inv *Invitation) error {
	if err := getJSON(txn, key(pLInv, tokenHash), inv); err != nil {
		if err == ErrNotFound {
			return fmt.Errorf("store: %s: %w", op, ErrNotFound)
		}
		return err
	}
	// Badger's TTL has one-second granularity; the record's own expiry is exact.
	if !time.Now().Before(inv.ExpiresAt) {
		return fmt.Errorf("store: %s: expired: %w", op, ErrNotFound)
	}
	return nil
}

// RedeemInvitation uses the link with this token hash: in one transaction
// it checks that the link is pending and its user still a local account of
// its org, stores passwordHash as the user's password, changes its
// CredVersion, and deletes every pending link of the user, so a link works
// exactly once even when two requests race. ErrNotFound if the link is unknown, expired or used, or
// its user is gone.
func (s *Store) RedeemInvitation(tokenHash, passwordHash string) (*Invitation, *User, error) {
	const op = "redeem invitation"
	if err := need(op, "token hash", tokenHash, "password hash", passwordHash); err != nil {
		return nil, nil, err
	}
	if err := s.enter(); err != nil {
		return nil, nil, err
	}
	defer s.leave()
	var inv *Invitation
	var u *User
	err := s.update(op, func(txn Txn) error {
		inv, u = new(Invitation), new(User)
		if err := liveInvitation(txn, op, tokenHash, inv); err != nil {
			return err
		}
		if err := requireOrg(txn, op, inv.OrgID); err != nil {
			return err
		}
		k := key(pUser, inv.OrgID, inv.UserID)
		if err := getJSON(txn, k, u); err != nil {
			return wrapNotFound(err, op, "user", inv.UserID)
		}
		if u.Source != SourceLocal {
			return notFound(op, "local account", inv.UserID)
		}
		u.PasswordHash = passwordHash
		u.CredVersion++
		u.Updated = now()
		// Only the password changes, so the user's indexes stay as they are.
		use := newUsage(inv.OrgID, nil)
		if _, err := use.set(txn, k, u); err != nil {
			return err
		}
		if err := revokeInvitations(txn, inv.OrgID, inv.UserID); err != nil {
			return err
		}
		return s.charge(txn, use, inv.UserID)
	})
	if err != nil {
		return nil, nil, err
	}
	return inv, u, nil
}

// PendingInvitations returns, for each user of the org with a pending
// set-password link, when the newest one expires.
func (s *Store) PendingInvitations(orgID string) (map[string]time.Time, error) {
	const op = "pending invitations"
	if err := need(op, "org id", orgID); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	out := map[string]time.Time{}
	t := time.Now()
	err := s.view(func(txn Txn) error {
		p := scanPrefix(pLInvUser, orgID)
		for _, k := range keysWithPrefix(txn, p, nil, 0) {
			var exp time.Time
			if err := getJSON(txn, k, &exp); err != nil {
				if err == ErrNotFound {
					continue
				}
				return err
			}
			if !t.Before(exp) {
				continue
			}
			user, _, _ := strings.Cut(string(k[len(p):]), "/")
			user = unesc(user)
			if exp.After(out[user]) {
				out[user] = exp
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// LocalAccountsByEmail returns the local accounts, in every organization,
// that sign in with this address (case-insensitively), oldest first.
// Entries left behind by deleted users or orgs, or by an address changed
// outside the local-account operations, are skipped.
func (s *Store) LocalAccountsByEmail(email string) ([]*User, error) {
	const op = "local accounts by email"
	if err := need(op, "email", email); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	m := userKey(email)
	var out []*User
	err := s.view(func(txn Txn) error {
		for _, k := range keysWithPrefix(txn, scanPrefix(pLMail, m), nil, 0) {
			org := lastSegment(k)
			var id string
			if err := getJSON(txn, k, &id); err != nil {
				if err == ErrNotFound {
					continue
				}
				return err
			}
			u := new(User)
			switch err := getJSON(txn, key(pUser, org, id), u); {
			case err == ErrNotFound:
				continue
			case err != nil:
				return err
			}
			if u.OrgID != org || u.Source != SourceLocal || localEmail(u) != m {
				continue
			}
			out = append(out, u)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b *User) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.OrgID, b.OrgID)
	})
	return out, nil
}

// DeleteLocalUser removes a local account as DeleteUser does (sessions,
// memberships, indexes), with its pending links and its address index, in
// one transaction. The org's backup login cannot be removed (ErrConflict):
// another account must be designated first. ErrInvalid if the user is not
// a local account. It returns the removed user.
func (s *Store) DeleteLocalUser(orgID, userID string) (*User, error) {
	const op = "delete local user"
	if err := need(op, "org id", orgID, "user id", userID); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	var gone *User
	err := s.update(op, func(txn Txn) error {
		o := new(Org)
		if err := getJSON(txn, key(pOrg, orgID), o); err != nil {
			return wrapNotFound(err, op, "organization", orgID)
		}
		u := new(User)
		if err := getJSON(txn, key(pUser, orgID, userID), u); err != nil {
			return wrapNotFound(err, op, "user", userID)
		}
		if u.Source != SourceLocal {
			return invalid(op, "user %q is not a local account", userID)
		}
		if o.BackupLogin == userID {
			return fmt.Errorf("store: %s: user %q is the organization's backup login: %w", op, userID, ErrConflict)
		}
		if err := revokeInvitations(txn, orgID, userID); err != nil {
			return err
		}
		mk := key(pLMail, localEmail(u), orgID)
		var holder string
		switch err := getJSON(txn, mk, &holder); {
		case err == nil && holder == userID:
			if err := del(txn, mk); err != nil {
				return err
			}
		case err != nil && err != ErrNotFound:
			return err
		}
		use := newUsage(orgID, nil)
		var err error
		if gone, err = deleteUser(txn, use, op, orgID, userID); err != nil {
			return err
		}
		return s.charge(txn, use, userID)
	})
	if err != nil {
		return nil, err
	}
	return gone, nil
}

// SetBackupLogin designates the org's backup login account. In one
// transaction it reads the org and the user, asks eligible whether the
// user qualifies (an error from it aborts and is returned as is; it may
// run more than once and must not call back into the Store), and stores
// the designation. It returns the updated org and the previous backup
// login's user ID. ErrNotFound if the org or the user does not exist.
func (s *Store) SetBackupLogin(orgID, userID string, eligible func(*User) error) (*Org, string, error) {
	const op = "set backup login"
	if err := need(op, "org id", orgID, "user id", userID); err != nil {
		return nil, "", err
	}
	if eligible == nil {
		return nil, "", invalid(op, "nil eligibility check")
	}
	if err := s.enter(); err != nil {
		return nil, "", err
	}
	defer s.leave()
	var o *Org
	var previous string
	err := s.update(op, func(txn Txn) error {
		o = new(Org)
		if err := getJSON(txn, key(pOrg, orgID), o); err != nil {
			return wrapNotFound(err, op, "organization", orgID)
		}
		u := new(User)
		if err := getJSON(txn, key(pUser, orgID, userID), u); err != nil {
			return wrapNotFound(err, op, "user", userID)
		}
		if err := eligible(u); err != nil {
			return err
		}
		previous = o.BackupLogin
		o.BackupLogin = userID
		o.Updated = now()
		_, err := setJSON(txn, key(pOrg, orgID), o, 0)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	return o, previous, nil
}
