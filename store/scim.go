package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"
)

// This file holds what SCIM provisioning needs beyond plain records:
// deprovisioning markers, the token's last-used time, and index-only
// lookups.

// Kinds of deprovisioning marker (the segment after the org in udel keys).
const (
	udelUserName   = "n"
	udelExternalID = "x"
	udelEmail      = "m"
)

// deprovisionKeys are the markers that stand for u once it is gone.
func deprovisionKeys(u *User) [][]byte {
	keys := [][]byte{key(pUDel, u.OrgID, udelUserName, userKey(u.UserName))}
	if u.ExternalID != "" {
		keys = append(keys, key(pUDel, u.OrgID, udelExternalID, u.ExternalID))
	}
	for _, e := range u.Emails {
		if e.Value != "" {
			keys = append(keys, key(pUDel, u.OrgID, udelEmail, userKey(e.Value)))
		}
	}
	return keys
}

// DeprovisionUser deletes the user as DeleteUser does and, in the same
// transaction, records its userName, externalId and email addresses as
// deprovisioned. A user the IdP's provisioning deleted has no record left
// to carry "inactive", yet the IdP may still assert them at sign-in; the
// markers let the sign-in tell them from someone provisioning has never
// mentioned (see Deprovisioned). ProvisionUser lifts them.
func (s *Store) DeprovisionUser(orgID, id string) error {
	const op = "deprovision user"
	if err := need(op, "org id", orgID, "user id", id); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	return s.update(op, func(txn Txn) error {
		use := newUsage(orgID, nil)
		u, err := deleteUser(txn, use, op, orgID, id)
		if err != nil {
			return err
		}
		at := now()
		for _, k := range deprovisionKeys(u) {
			if _, err := use.set(txn, k, at); err != nil {
				return err
			}
		}
		return s.charge(txn, use, id)
	})
}

// Deprovisioned reports whether any of the given identifiers (empty ones
// are skipped) belonged to a user DeprovisionUser removed and that has not
// been provisioned again since. userName and email compare
// case-insensitively, externalID exactly.
func (s *Store) Deprovisioned(orgID, externalID, userName, email string) (bool, error) {
	const op = "deprovisioned"
	if err := need(op, "org id", orgID); err != nil {
		return false, err
	}
	var keys [][]byte
	if externalID != "" {
		keys = append(keys, key(pUDel, orgID, udelExternalID, externalID))
	}
	if userName != "" {
		keys = append(keys, key(pUDel, orgID, udelUserName, userKey(userName)))
	}
	if email != "" {
		keys = append(keys, key(pUDel, orgID, udelEmail, userKey(email)))
	}
	if err := s.enter(); err != nil {
		return false, err
	}
	defer s.leave()
	found := false
	err := s.view(func(txn Txn) error {
		for _, k := range keys {
			ok, err := exists(txn, k)
			if err != nil {
				return err
			}
			if ok {
				found = true
				return nil
			}
		}
		return nil
	})
	return found, err
}

// ProvisionUser creates a user as CreateUser does and, in the same
// transaction, lifts the deprovisioning markers of its userName,
// externalId and email addresses: the IdP has provisioned them again.
// ErrQuota if opts set a cap the user does not fit in.
func (s *Store) ProvisionUser(u *User, opts ...WriteOption) error {
	return s.createUser("provision user", u, func(txn Txn, use *usage, u *User) error {
		for _, k := range deprovisionKeys(u) {
			if err := use.del(txn, k); err != nil {
				return err
			}
		}
		return nil
	}, opts)
}

// TouchSCIMToken records that the organization's SCIM token was accepted
// at `at` (now if zero), for the admin's "last used" display.
//
// Like TouchSession it is not synced when it returns: touches are buffered
// and written together about once a second, so a crash may lose the last
// second of them. The write changes only SCIMTokenLastUsed (not Updated),
// never moves it backwards, drops a time older than the current token's
// creation (a touch that raced a rotation belongs to the revoked token),
// and is dropped if the organization is gone.
func (s *Store) TouchSCIMToken(orgID string, at time.Time) error {
	if err := need("touch SCIM token", "org id", orgID); err != nil {
		return err
	}
	_, err := s.bufferTouch(&s.scimTouches, orgID, at)
	return err
}

// flushSCIMTouches writes the buffered token touches. It runs on the
// flusher goroutine and once more in Close, never concurrently. There is
// at most one touch per organization, so one transaction holds them all.
func (s *Store) flushSCIMTouches() {
	s.touchMu.Lock()
	batch := s.scimTouches
	if len(batch) == 0 {
		s.touchMu.Unlock()
		return
	}
	s.scimTouches = make(map[string]time.Time)
	s.touchMu.Unlock()

	ids := make([]string, 0, len(batch))
	for id := range batch {
		ids = append(ids, id)
	}
	for chunk := range slices.Chunk(ids, touchesPerTxn) {
		err := s.updateTouch("touch SCIM tokens", func(txn Txn) error {
			for _, id := range chunk {
				k := key(pOrg, id)
				o := new(Org)
				if err := getJSON(txn, k, o); err != nil {
					if errors.Is(err, ErrNotFound) {
						continue
					}
					return err
				}
				at := batch[id]
				if len(o.SCIMTokenHash) == 0 || at.Before(o.SCIMTokenCreated) || !at.After(o.SCIMTokenLastUsed) {
					continue
				}
				o.SCIMTokenLastUsed = at
				if _, err := setJSON(txn, k, o, 0); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			s.log.Warn("writing SCIM token touches failed", zap.Int("organizations", len(chunk)), zap.Error(err))
		}
	}
}

// GroupIDByExternalID returns the ID of the group with this externalId
// (exact match) from the index alone, without reading the group record,
// which carries every member.
func (s *Store) GroupIDByExternalID(orgID, externalID string) (string, error) {
	const op = "group ID by externalId"
	if err := need(op, "org id", orgID, "externalId", externalID); err != nil {
		return "", err
	}
	return s.indexedID(indexLookup(op, key(pGExt, orgID, externalID), "group externalId", externalID))
}

// GroupIDByDisplayName returns the ID of the group with this displayName
// (ASCII letters case-insensitively) from the index alone; ErrAmbiguous
// when several groups have it.
func (s *Store) GroupIDByDisplayName(orgID, name string) (string, error) {
	const op = "group ID by displayName"
	if err := need(op, "org id", orgID, "displayName", name); err != nil {
		return "", err
	}
	return s.indexedID(groupIDByName(op, orgID, name))
}

// GroupIDsByDisplayName returns the IDs of the groups with this
// displayName (ASCII letters case-insensitively), in ID order, at most
// limit of them (0: all); none is not an error.
func (s *Store) GroupIDsByDisplayName(orgID, name string, limit int) ([]string, error) {
	const op = "group IDs by displayName"
	if err := need(op, "org id", orgID, "displayName", name); err != nil {
		return nil, err
	}
	return s.indexedIDs(scanPrefix(pGName, orgID, groupKey(name)), limit)
}

// UserIDsByEmail returns the IDs of the org's users that have this email
// address (case-insensitively), in ID order; none is not an error.
func (s *Store) UserIDsByEmail(orgID, email string) ([]string, error) {
	const op = "user IDs by email"
	if err := need(op, "org id", orgID, "email", email); err != nil {
		return nil, err
	}
	return s.indexedIDs(scanPrefix(pUMail, orgID, userKey(email)), 0)
}

// indexedIDs returns the IDs (last key segments) of the non-unique index
// entries under prefix, in key order, at most limit of them (0: all).
func (s *Store) indexedIDs(prefix []byte, limit int) ([]string, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	ids := []string{}
	err := s.view(func(txn Txn) error {
		for _, k := range keysWithPrefix(txn, prefix, nil, limit) {
			ids = append(ids, lastSegment(k))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

func (s *Store) indexedID(resolve func(Txn) (string, error)) (string, error) {
	if err := s.enter(); err != nil {
		return "", err
	}
	defer s.leave()
	var id string
	err := s.view(func(txn Txn) error {
		var err error
		id, err = resolve(txn)
		return err
	})
	return id, err
}

// CreateUsers creates several users of one organization in a single
// transaction, all or none, with the rules of CreateUser (each user is
// updated in place on success). It exists for imports, where one synced
// commit per user would be the bottleneck; a batch must stay well below
// Badger's transaction size limit (a thousand users is fine).
func (s *Store) CreateUsers(users []*User, opts ...WriteOption) error {
	const op = "create users"
	if len(users) == 0 {
		return nil
	}
	cs := make([]User, len(users))
	created := now()
	for i, u := range users {
		if u == nil {
			return invalid(op, "nil user")
		}
		if err := checkUser(op, u); err != nil {
			return err
		}
		if u.OrgID != users[0].OrgID {
			return invalid(op, "users of several organizations")
		}
		c := *u
		if c.ID == "" {
			c.ID = uuid.NewString()
		}
		if c.Created.IsZero() {
			c.Created = created
		}
		if c.Updated.IsZero() {
			c.Updated = c.Created
		}
		cs[i] = c
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	err := s.update(op, func(txn Txn) error {
		if err := requireOrg(txn, op, cs[0].OrgID); err != nil {
			return err
		}
		use := newUsage(cs[0].OrgID, opts)
		for i := range cs {
			if err := putNewUser(txn, use, op, &cs[i]); err != nil {
				return err
			}
		}
		return s.charge(txn, use, cs[0].ID)
	})
	if err != nil {
		if errors.Is(err, ErrTxnTooBig) {
			return invalid(op, "too many users in one batch")
		}
		return err
	}
	for i, u := range users {
		*u = cs[i]
	}
	return nil
}

// ProvisioningMatches returns, from one snapshot, the users of the org a
// provisioning request with these identifiers may mean: the holder of
// externalID (nil when none, or externalID is ""), the holder of userName
// (case-insensitively; nil when none), and the users having any of emails
// (case-insensitively), in the order of emails, then of user ID, each
// once. See LookUpProvisioning, which also checks domains.
func (s *Store) ProvisioningMatches(orgID, externalID, userName string, emails []string) (byExternalID, byUserName *User, byEmail []*User, err error) {
	l, err := s.LookUpProvisioning(orgID, nil, externalID, userName, emails)
	if err != nil {
		return nil, nil, nil, err
	}
	return l.ByExternalID, l.ByUserName, l.ByEmail, nil
}

// Provisioning is what a SCIM creation looks up before it writes (see
// LookUpProvisioning).
type Provisioning struct {
	// DomainOwners holds, for each domain asked about, the organization
	// that verified it ("" for none).
	DomainOwners []string
	// The users the request may mean (see ProvisioningMatches).
	ByExternalID, ByUserName *User
	ByEmail                  []*User
}

// LookUpProvisioning returns, from one snapshot, the owners of domains
// (OrgForDomain's answer for each) and ProvisioningMatches's users. A
// SCIM creation asks this before it creates or adopts a user. On
// PostgreSQL it is one statement when no user matches, as during an
// initial import (else one more exchange per index kind): reading each
// separately made three views of two round trips each.
func (s *Store) LookUpProvisioning(orgID string, domains []string, externalID, userName string, emails []string) (*Provisioning, error) {
	const op = "provisioning matches"
	if err := need(op, "org id", orgID, "userName", userName); err != nil {
		return nil, err
	}
	for _, d := range domains {
		if err := need(op, "domain name", d); err != nil {
			return nil, err
		}
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	idx := [][]byte{key(pUName, orgID, userKey(userName))}
	if externalID != "" {
		idx = append(idx, key(pUExt, orgID, externalID))
	}
	mailPrefixes := addressPrefixes(orgID, emails)
	keys := append([][]byte(nil), idx...)
	for _, d := range domains {
		keys = append(keys, key(pVDom, d))
	}
	l := &Provisioning{DomainOwners: make([]string, len(domains))}
	matched := false
	// First the common case in one read: the domains, and whether any
	// index names a user at all.
	err := s.viewSingle(func(txn Txn) error {
		vals, found, err := probe(txn, keys, mailPrefixes)
		if err != nil {
			return err
		}
		for _, v := range vals[:len(idx)] {
			matched = matched || v != nil
		}
		for _, f := range found {
			matched = matched || f
		}
		return decodeOwners(l.DomainOwners, keys[len(idx):], vals[len(idx):])
	})
	if err != nil || !matched {
		if err != nil {
			return nil, err
		}
		return l, nil
	}
	// Someone matched: read the users, and the domains again, in one
	// snapshot.
	err = s.view(func(txn Txn) error {
		vals, err := getMany(txn, keys)
		if err != nil {
			return err
		}
		if err := decodeOwners(l.DomainOwners, keys[len(idx):], vals[len(idx):]); err != nil {
			return err
		}
		holders := vals[:len(idx)]
		ids := make([]string, len(holders))
		for i, v := range holders {
			if v != nil {
				if err := json.Unmarshal(v, &ids[i]); err != nil {
					return fmt.Errorf("store: decode %q: %w", idx[i], err)
				}
			}
		}
		seen := map[string]bool{}
		var mailIDs []string
		for _, p := range mailPrefixes {
			for _, k := range keysWithPrefix(txn, p, nil, 0) {
				if id := lastSegment(k); !seen[id] {
					seen[id] = true
					mailIDs = append(mailIDs, id)
				}
			}
		}
		all := append(append([]string(nil), ids...), mailIDs...)
		recs := make([][]byte, len(all))
		for i, id := range all {
			if id != "" {
				recs[i] = key(pUser, orgID, id)
			}
		}
		users := make([]*User, len(all))
		var want [][]byte
		var at []int
		for i, k := range recs {
			if k != nil {
				want = append(want, k)
				at = append(at, i)
			}
		}
		recVals, err := getMany(txn, want)
		if err != nil {
			return err
		}
		for j, v := range recVals {
			if v == nil {
				continue // cannot happen while indexes are kept in step
			}
			u := new(User)
			if err := json.Unmarshal(v, u); err != nil {
				return fmt.Errorf("store: decode %q: %w", want[j], err)
			}
			users[at[j]] = u
		}
		l.ByUserName = users[0]
		if externalID != "" {
			l.ByExternalID = users[1]
		}
		for _, u := range users[len(ids):] {
			if u != nil {
				l.ByEmail = append(l.ByEmail, u)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// decodeOwners decodes the verified-domain records vals of keys into
// owners ("" for an absent one).
func decodeOwners(owners []string, keys, vals [][]byte) error {
	for i, v := range vals {
		owners[i] = ""
		if v == nil {
			continue
		}
		if err := json.Unmarshal(v, &owners[i]); err != nil {
			return fmt.Errorf("store: decode %q: %w", keys[i], err)
		}
	}
	return nil
}
