package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/google/uuid"
)

// userIndex is one secondary-index key of a user. Unique keys (userName,
// externalId) admit one user; email keys carry the user ID as their last
// segment, so several users may share an address.
type userIndex struct {
	key    []byte
	unique bool
	what   string // for error messages
}

func userIndexes(u *User) []userIndex {
	idx := []userIndex{{key: key(pUName, u.OrgID, userKey(u.UserName)), unique: true, what: fmt.Sprintf("userName %q", u.UserName)}}
	if u.ExternalID != "" {
		idx = append(idx, userIndex{key: key(pUExt, u.OrgID, u.ExternalID), unique: true, what: fmt.Sprintf("externalId %q", u.ExternalID)})
	}
	seen := map[string]bool{}
	for _, e := range u.Emails {
		m := userKey(e.Value)
		if m == "" || seen[m] {
			continue
		}
		seen[m] = true
		idx = append(idx, userIndex{key: key(pUMail, u.OrgID, m, u.ID)})
	}
	return idx
}

// dropUserIndex removes a user's index key. A unique key goes only if it
// points at this user: after the index migration, a user whose name the
// new rule joins with another's may compute a key that the other holds.
func dropUserIndex(txn Txn, use *usage, ix userIndex, id string) error {
	if ix.unique {
		var holder string
		switch err := getJSON(txn, ix.key, &holder); {
		case errors.Is(err, ErrNotFound) || (err == nil && holder != id):
			return nil
		case err != nil:
			return err
		}
	}
	return use.del(txn, ix.key)
}

// writeUserIndexes adds the index keys in add that are not in keep, failing
// with ErrConflict when a unique key belongs to another user.
func writeUserIndexes(txn Txn, use *usage, op string, u *User, add []userIndex, keep map[string]bool) error {
	for _, ix := range add {
		if keep[string(ix.key)] {
			continue
		}
		if ix.unique {
			var holder string
			err := getJSON(txn, ix.key, &holder)
			if err == nil && holder != u.ID {
				return fmt.Errorf("store: %s: %s already used in organization %q: %w", op, ix.what, u.OrgID, ErrConflict)
			}
			if err != nil && err != ErrNotFound {
				return err
			}
		}
		if _, err := use.set(txn, ix.key, u.ID); err != nil {
			return err
		}
	}
	return nil
}

func checkUser(op string, u *User) error {
	if err := need(op, "org id", u.OrgID, "userName", u.UserName); err != nil {
		return err
	}
	for _, e := range u.Emails {
		if e.Value == "" {
			return invalid(op, "empty email address")
		}
	}
	return nil
}

// CreateUser stores a new user of u.OrgID. It assigns a random UUID when
// u.ID is empty and sets Created and Updated when zero; u is updated in
// place on success. ErrConflict if the userName (case-insensitively) or
// externalId (exactly) is used by another user of the org; ErrExists if the
// ID is taken; ErrNotFound if the org does not exist; ErrQuota or
// ErrUserLimit if opts set a cap the user does not fit in. Concurrent
// creations in one organization share a transaction (see commitgroup.go).
func (s *Store) CreateUser(u *User, opts ...WriteOption) error {
	return s.createUser("create user", u, nil, opts)
}

// createUser is CreateUser; also, when set, runs in the same transaction
// (and charges the bytes it writes to use).
func (s *Store) createUser(op string, u *User, also func(txn Txn, use *usage, u *User) error, opts []WriteOption) error {
	if u == nil {
		return invalid(op, "nil user")
	}
	if err := checkUser(op, u); err != nil {
		return err
	}
	c := *u
	if c.ID == "" {
		c.ID = uuid.NewString()
	}
	if c.Created.IsZero() {
		c.Created = now()
	}
	if c.Updated.IsZero() {
		c.Updated = c.Created
	}
	o := writeOpts(opts)
	var ev *AuditEvent
	if o.audit != nil {
		var err error
		if ev, err = newAuditEvent(op, o.audit); err != nil {
			return err
		}
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	reads := readSet{keys: createUserReads(&c)}
	if o.maxBytes > 0 {
		// charge's check of the cap reads them all, untracked: in the
		// same exchange where the backend can.
		reads.snap = usageKeys(c.OrgID)
	}
	var mailPrefixes [][]byte
	if o.unmatched {
		for _, d := range o.domains {
			reads.snap = append(reads.snap, key(pVDom, d))
		}
		mailPrefixes = mailPrefixesOf(&c)
		reads.prefixes = mailPrefixes
	}
	err := s.updateGrouped(op, "users/"+c.OrgID, reads, func(txn Txn) error {
		txn, err := prefetchSet(txn, reads)
		if err != nil {
			return err
		}
		if err := requireOrg(txn, op, c.OrgID); err != nil {
			return err
		}
		if o.unmatched {
			if err := s.checkUnmatched(txn, &c, o.domains, mailPrefixes); err != nil {
				return err
			}
		}
		if err := checkUserLimit(txn, op, c.OrgID, o.maxUsers); err != nil {
			return err
		}
		use := &usage{org: c.OrgID, max: o.maxBytes}
		if err := putNewUser(txn, use, op, &c); err != nil {
			return err
		}
		if also != nil {
			if err := also(txn, use, &c); err != nil {
				return err
			}
		}
		if err := s.charge(txn, use, c.ID); err != nil {
			return err
		}
		if ev != nil {
			if _, err := setJSON(txn, auditKey(ev), ev, 0); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if ev != nil {
			s.auditWriteFailed([]*AuditEvent{ev})
		}
		return err
	}
	if ev != nil {
		*o.audit = *ev
		s.countAuditAppends([]*AuditEvent{ev})
	}
	*u = c
	return nil
}

// mailPrefixesOf is addressPrefixes of u's addresses.
func mailPrefixesOf(u *User) [][]byte {
	emails := make([]string, len(u.Emails))
	for i, e := range u.Emails {
		emails[i] = e.Value
	}
	return addressPrefixes(u.OrgID, emails)
}

// addressPrefixes are the address index prefixes of emails in orgID, one per
// address as the one rule for identity values folds them.
func addressPrefixes(orgID string, emails []string) [][]byte {
	var out [][]byte
	seen := map[string]bool{}
	for _, e := range emails {
		if m := userKey(e); m != "" && !seen[m] {
			seen[m] = true
			out = append(out, scanPrefix(pUMail, orgID, m))
		}
	}
	return out
}

// checkUnmatched is Unmatched's check of u in txn (mailPrefixes: those
// of u's addresses). Domains are read as LookUpProvisioning's separate
// view did, untracked, so that creations in organizations whose users
// share a domain do not conflict over it.
func (s *Store) checkUnmatched(txn Txn, u *User, domains []string, mailPrefixes [][]byte) error {
	if len(domains) > 0 {
		keys := make([][]byte, len(domains))
		for i, d := range domains {
			keys[i] = key(pVDom, d)
		}
		owners := make([]string, len(domains))
		err := s.snapshotRead(txn, func(v Txn) error {
			vals, err := getMany(v, keys)
			if err != nil {
				return err
			}
			return decodeOwners(owners, keys, vals)
		})
		if err != nil {
			return err
		}
		for i, owner := range owners {
			if owner != "" && owner != u.OrgID {
				return &DomainOwnedError{Domain: domains[i], Owner: owner}
			}
		}
	}
	for _, ix := range userIndexes(u) {
		if !ix.unique {
			continue
		}
		if ok, err := exists(txn, ix.key); err != nil || ok {
			if err == nil {
				err = ErrMatched
			}
			return err
		}
	}
	for _, p := range mailPrefixes {
		if found, err := prefixFound(txn, p); err != nil || found {
			if err == nil {
				err = ErrMatched
			}
			return err
		}
	}
	return nil
}

// createUserReads are the keys creating u reads (ProvisionUser's markers
// and the stored-bytes stripe included), for prefetch.
func createUserReads(u *User) [][]byte {
	keys := [][]byte{key(pOrgLive, u.OrgID), key(pCount, "users", u.OrgID), key(pUser, u.OrgID, u.ID),
		usageMarker(u.OrgID), usageKey(u.OrgID, usageStripe(u.ID))}
	for _, ix := range userIndexes(u) {
		keys = append(keys, ix.key)
	}
	return append(keys, deprovisionKeys(u)...)
}

func putNewUser(txn Txn, use *usage, op string, u *User) error {
	k := key(pUser, u.OrgID, u.ID)
	if ok, err := exists(txn, k); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("store: %s: user %q: %w", op, u.ID, ErrExists)
	}
	if err := writeUserIndexes(txn, use, op, u, userIndexes(u), nil); err != nil {
		return err
	}
	if _, err := use.set(txn, k, u); err != nil {
		return err
	}
	// A read and a write of one key per organization: besides the
	// count, it makes concurrent creations conflict, which Unmatched's
	// address probe relies on to be exact.
	return addCounter(txn, key(pCount, "users", u.OrgID), 1)
}

// GetUser returns the user, or ErrNotFound.
func (s *Store) GetUser(orgID, id string) (*User, error) {
	const op = "get user"
	if err := need(op, "org id", orgID, "user id", id); err != nil {
		return nil, err
	}
	return s.userVia(op, orgID, func(Txn) (string, error) { return id, nil })
}

// UserByUserName finds a user by userName, case-insensitively.
func (s *Store) UserByUserName(orgID, userName string) (*User, error) {
	const op = "user by userName"
	if err := need(op, "org id", orgID, "userName", userName); err != nil {
		return nil, err
	}
	return s.userVia(op, orgID, indexLookup(op, key(pUName, orgID, userKey(userName)), "userName", userName))
}

// UserByExternalID finds a user by externalId (exact match).
func (s *Store) UserByExternalID(orgID, externalID string) (*User, error) {
	const op = "user by externalId"
	if err := need(op, "org id", orgID, "externalId", externalID); err != nil {
		return nil, err
	}
	return s.userVia(op, orgID, indexLookup(op, key(pUExt, orgID, externalID), "externalId", externalID))
}

// UserByEmail finds a user by any of their email addresses,
// case-insensitively. Addresses need not be unique: when several users of
// the org share one, the oldest user (earliest Created, then lowest ID)
// is returned.
func (s *Store) UserByEmail(orgID, email string) (*User, error) {
	const op = "user by email"
	if err := need(op, "org id", orgID, "email", email); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	var best *User
	err := s.view(func(txn Txn) error {
		for _, k := range keysWithPrefix(txn, scanPrefix(pUMail, orgID, userKey(email)), nil, 0) {
			u := new(User)
			if err := getJSON(txn, key(pUser, orgID, lastSegment(k)), u); err != nil {
				if err == ErrNotFound {
					continue // cannot happen while indexes are kept in step
				}
				return err
			}
			if best == nil || u.Created.Before(best.Created) || (u.Created.Equal(best.Created) && u.ID < best.ID) {
				best = u
			}
		}
		if best == nil {
			return notFound(op, "email", email)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return best, nil
}

// indexLookup returns a resolver reading a user ID from an index key.
func indexLookup(op string, k []byte, what, val string) func(Txn) (string, error) {
	return func(txn Txn) (string, error) {
		var id string
		if err := getJSON(txn, k, &id); err != nil {
			return "", wrapNotFound(err, op, what, val)
		}
		return id, nil
	}
}

func (s *Store) userVia(op, orgID string, resolve func(Txn) (string, error)) (*User, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	u := new(User)
	err := s.view(func(txn Txn) error {
		id, err := resolve(txn)
		if err != nil {
			return err
		}
		return wrapNotFound(getJSON(txn, key(pUser, orgID, id), u), op, "user", id)
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// UpdateUser applies fn to the user in one transaction (see UpdateOrg for
// fn's contract) and keeps the userName, externalId and email indexes in
// step. ID and OrgID cannot change; Updated is set. ErrConflict if the new
// userName or externalId belongs to another user of the org; ErrQuota if
// opts set a cap the grown user does not fit in.
func (s *Store) UpdateUser(orgID, id string, fn func(*User) error, opts ...WriteOption) (*User, error) {
	const op = "update user"
	if err := need(op, "org id", orgID, "user id", id); err != nil {
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
		var err error
		stored, err = s.updateUser(txn, op, orgID, id, fn, opts)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := new(User)
	return out, json.Unmarshal(stored, out)
}

// updateUser is UpdateUser's transaction; it returns the stored record.
func (s *Store) updateUser(txn Txn, op, orgID, id string, fn func(*User) error, opts []WriteOption) ([]byte, error) {
	k := key(pUser, orgID, id)
	old := new(User)
	if err := getJSON(txn, k, old); err != nil {
		return nil, wrapNotFound(err, op, "user", id)
	}
	u := new(User)
	if err := getJSON(txn, k, u); err != nil { // fn gets its own copy
		return nil, err
	}
	if err := fn(u); err != nil {
		return nil, err
	}
	if u.ID != id || u.OrgID != orgID {
		return nil, invalid(op, "user ID and organization are immutable")
	}
	if err := checkUser(op, u); err != nil {
		return nil, err
	}
	u.Updated = now()

	use := newUsage(orgID, opts)
	oldIdx, newIdx := userIndexes(old), userIndexes(u)
	keep := map[string]bool{}
	for _, ix := range oldIdx {
		keep[string(ix.key)] = true
	}
	wanted := map[string]bool{}
	for _, ix := range newIdx {
		wanted[string(ix.key)] = true
	}
	for _, ix := range oldIdx {
		if !wanted[string(ix.key)] {
			if err := dropUserIndex(txn, use, ix, id); err != nil {
				return nil, err
			}
		}
	}
	if err := writeUserIndexes(txn, use, op, u, newIdx, keep); err != nil {
		return nil, err
	}
	stored, err := use.set(txn, k, u)
	if err != nil {
		return nil, err
	}
	return stored, s.charge(txn, use, id)
}

// DeleteUser removes the user, its indexes, its group memberships (from the
// groups' member lists too) and its sessions, in one transaction.
func (s *Store) DeleteUser(orgID, id string) error {
	const op = "delete user"
	if err := need(op, "org id", orgID, "user id", id); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	return s.update(op, func(txn Txn) error {
		use := newUsage(orgID, nil)
		if _, err := deleteUser(txn, use, op, orgID, id); err != nil {
			return err
		}
		return s.charge(txn, use, id)
	})
}

// deleteUser is DeleteUser's transaction; it returns the deleted user.
func deleteUser(txn Txn, use *usage, op, orgID, id string) (*User, error) {
	k := key(pUser, orgID, id)
	u := new(User)
	if err := getJSON(txn, k, u); err != nil {
		return nil, wrapNotFound(err, op, "user", id)
	}
	for _, ix := range userIndexes(u) {
		if err := dropUserIndex(txn, use, ix, id); err != nil {
			return nil, err
		}
	}
	// Memberships: drop the user from each group's record.
	for _, mk := range keysWithPrefix(txn, scanPrefix(pGMem, orgID, id), nil, 0) {
		gid := lastSegment(mk)
		gk := key(pGrp, orgID, gid)
		g := new(Group)
		switch err := getJSON(txn, gk, g); {
		case err == nil:
			g.Members = slices.DeleteFunc(g.Members, func(m string) bool { return m == id })
			g.Updated = now()
			if _, err := use.set(txn, gk, g); err != nil {
				return nil, err
			}
		case !errors.Is(err, ErrNotFound):
			return nil, err
		}
		if err := use.del(txn, mk); err != nil {
			return nil, err
		}
	}
	if _, err := deleteSessionsByUser(txn, orgID, id); err != nil {
		return nil, err
	}
	if err := use.del(txn, k); err != nil {
		return nil, err
	}
	if err := addCounter(txn, key(pCount, "users", orgID), -1); err != nil {
		return nil, err
	}
	return u, nil
}

// ListUsers returns a page of the org's users in a stable order (by ID),
// skipping offset users and returning at most limit (limit < 0: all;
// limit 0: none, only the total). total counts all users of the org.
func (s *Store) ListUsers(orgID string, offset, limit int) (users []*User, total int, err error) {
	if err := need("list users", "org id", orgID); err != nil {
		return nil, 0, err
	}
	if err := s.enter(); err != nil {
		return nil, 0, err
	}
	defer s.leave()
	users = []*User{}
	err = s.view(func(txn Txn) error {
		var err error
		var version uint64
		if total, version, err = counterVersion(txn, key(pCount, "users", orgID)); err != nil {
			return err
		}
		return s.listPage(txn, scanPrefix(pUser, orgID), max(offset, 0), limit, version, func(b []byte) error {
			u := new(User)
			if err := json.Unmarshal(b, u); err != nil {
				return err
			}
			users = append(users, u)
			return nil
		})
	})
	if err != nil {
		return nil, 0, err
	}
	return users, total, nil
}

// CountUsers returns the number of users of the org (0 for an unknown org),
// from a counter kept with the records, not by scanning.
func (s *Store) CountUsers(orgID string) (int, error) {
	if err := need("count users", "org id", orgID); err != nil {
		return 0, err
	}
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	var n int
	err := s.viewSingle(func(txn Txn) error {
		var err error
		n, err = counter(txn, key(pCount, "users", orgID))
		return err
	})
	return n, err
}

// checkUserLimit refuses one more user in org when it has max already
// (max <= 0: no cap). The count is read in the creating transaction, so
// concurrent creations conflict on it rather than overshoot together.
func checkUserLimit(txn Txn, op, org string, max int) error {
	if max <= 0 {
		return nil
	}
	n, err := counter(txn, key(pCount, "users", org))
	if err != nil {
		return err
	}
	if n >= max {
		return fmt.Errorf("store: %s: organization %q has %d users, its limit: %w", op, org, n, ErrUserLimit)
	}
	return nil
}
