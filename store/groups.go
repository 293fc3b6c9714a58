package store

import (
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
)

// dedupeMembers drops repeated member IDs, keeping the first occurrence.
func groupNameKey(orgID, name, id string) []byte {
	return key(pGName, orgID, groupKey(name), id)
}

// groupIDByName resolves a displayName to the one group that has it.
func groupIDByName(op, orgID, name string) func(Txn) (string, error) {
	return func(txn Txn) (string, error) {
		ks := keysWithPrefix(txn, scanPrefix(pGName, orgID, groupKey(name)), nil, 2)
		switch len(ks) {
		case 0:
			return "", wrapNotFound(ErrNotFound, op, "displayName", name)
		case 1:
			return lastSegment(ks[0]), nil
		}
		return "", fmt.Errorf("store: %s: several groups of organization %q are named %q: %w", op, orgID, name, ErrAmbiguous)
	}
}

func dedupeMembers(op string, members []string) ([]string, error) {
	if len(members) == 0 {
		return nil, nil
	}
	seen := make(map[string]bool, len(members))
	out := make([]string, 0, len(members))
	for _, m := range members {
		if m == "" {
			return nil, invalid(op, "empty member id")
		}
		if !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	return out, nil
}

// groupUniqueKeys are a group's index keys. The displayName index holds
// one key per group (gname/<org>/<name>/<id>): names may be shared, as in
// the directories the IdPs push from, and a look-up by name that finds
// several says so (ErrAmbiguous) rather than pick one. The externalId
// index is unique.
func groupUniqueKeys(g *Group) map[string]string {
	ks := map[string]string{string(groupNameKey(g.OrgID, g.DisplayName, g.ID)): fmt.Sprintf("displayName %q", g.DisplayName)}
	if g.ExternalID != "" {
		ks[string(key(pGExt, g.OrgID, g.ExternalID))] = fmt.Sprintf("externalId %q", g.ExternalID)
	}
	return ks
}

// writeGroupIndexes updates the displayName/externalId indexes from old (nil
// for a new group) to g, and the membership index from old's members to g's.
// Members added must be users of the org.
func writeGroupIndexes(txn Txn, use *usage, op string, old, g *Group) error {
	var oldKeys map[string]string
	var oldMembers []string
	if old != nil {
		oldKeys, oldMembers = groupUniqueKeys(old), old.Members
	}
	newKeys := groupUniqueKeys(g)
	for k := range oldKeys {
		if _, ok := newKeys[k]; !ok {
			if err := use.del(txn, []byte(k)); err != nil {
				return err
			}
		}
	}
	for k, what := range newKeys {
		if _, ok := oldKeys[k]; ok {
			continue
		}
		var holder string
		switch err := getJSON(txn, []byte(k), &holder); {
		case err == nil && holder != g.ID:
			return fmt.Errorf("store: %s: group %s already used in organization %q: %w", op, what, g.OrgID, ErrConflict)
		case err != nil && err != ErrNotFound:
			return err
		}
		if _, err := use.set(txn, []byte(k), g.ID); err != nil {
			return err
		}
	}

	wanted := make(map[string]bool, len(g.Members))
	for _, m := range g.Members {
		wanted[m] = true
	}
	had := make(map[string]bool, len(oldMembers))
	for _, m := range oldMembers {
		had[m] = true
		if !wanted[m] {
			if err := use.del(txn, key(pGMem, g.OrgID, m, g.ID)); err != nil {
				return err
			}
		}
	}
	for _, m := range g.Members {
		if had[m] {
			continue
		}
		// Reading the user also makes a concurrent DeleteUser conflict with
		// this transaction, so no membership can outlive its user.
		if ok, err := exists(txn, key(pUser, g.OrgID, m)); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("store: %s: member %q is not a user of organization %q: %w", op, m, g.OrgID, ErrNotFound)
		}
		if _, err := use.set(txn, key(pGMem, g.OrgID, m, g.ID), true); err != nil {
			return err
		}
	}
	return nil
}

// CreateGroup stores a new group of g.OrgID, assigning a random UUID when
// g.ID is empty and setting Created/Updated when zero; repeated members are
// dropped. g is updated in place on success. ErrConflict if externalId is
// used by another group of the org (displayNames may be shared);
// an error wrapping ErrNotFound if a member is not a user of the org;
// ErrQuota if opts set a cap the group does not fit in.
func (s *Store) CreateGroup(g *Group, opts ...WriteOption) error {
	const op = "create group"
	if g == nil {
		return invalid(op, "nil group")
	}
	if err := need(op, "org id", g.OrgID, "displayName", g.DisplayName); err != nil {
		return err
	}
	c := *g
	var err error
	if c.Members, err = dedupeMembers(op, c.Members); err != nil {
		return err
	}
	if c.ID == "" {
		c.ID = uuid.NewString()
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
	err = s.update(op, func(txn Txn) error {
		if err := requireOrg(txn, op, c.OrgID); err != nil {
			return err
		}
		k := key(pGrp, c.OrgID, c.ID)
		if ok, err := exists(txn, k); err != nil {
			return err
		} else if ok {
			return fmt.Errorf("store: %s: group %q: %w", op, c.ID, ErrExists)
		}
		use := newUsage(c.OrgID, opts)
		if err := writeGroupIndexes(txn, use, op, nil, &c); err != nil {
			return err
		}
		if _, err := use.set(txn, k, &c); err != nil {
			return err
		}
		if err := addCounter(txn, key(pCount, "groups", c.OrgID), 1); err != nil {
			return err
		}
		return s.charge(txn, use, c.ID)
	})
	if err != nil {
		return err
	}
	*g = c
	return nil
}

// GetGroup returns the group, or ErrNotFound.
func (s *Store) GetGroup(orgID, id string) (*Group, error) {
	const op = "get group"
	if err := need(op, "org id", orgID, "group id", id); err != nil {
		return nil, err
	}
	return s.groupVia(op, orgID, func(Txn) (string, error) { return id, nil })
}

// GroupByDisplayName finds the group with this displayName (ASCII letters
// case-insensitively); ErrAmbiguous when several groups have it.
func (s *Store) GroupByDisplayName(orgID, name string) (*Group, error) {
	const op = "group by displayName"
	if err := need(op, "org id", orgID, "displayName", name); err != nil {
		return nil, err
	}
	return s.groupVia(op, orgID, groupIDByName(op, orgID, name))
}

// GroupByExternalID finds a group by externalId (exact match).
func (s *Store) GroupByExternalID(orgID, externalID string) (*Group, error) {
	const op = "group by externalId"
	if err := need(op, "org id", orgID, "externalId", externalID); err != nil {
		return nil, err
	}
	return s.groupVia(op, orgID, indexLookup(op, key(pGExt, orgID, externalID), "externalId", externalID))
}

func (s *Store) groupVia(op, orgID string, resolve func(Txn) (string, error)) (*Group, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	g := new(Group)
	err := s.view(func(txn Txn) error {
		id, err := resolve(txn)
		if err != nil {
			return err
		}
		return wrapNotFound(getJSON(txn, key(pGrp, orgID, id), g), op, "group", id)
	})
	if err != nil {
		return nil, err
	}
	return g, nil
}

// UpdateGroup applies fn to the group in one transaction (see UpdateOrg for
// fn's contract), dedupes its members and keeps the displayName,
// externalId and membership indexes in step. ID and OrgID cannot change;
// Updated is set. Added members must be users of the org (ErrNotFound).
// ErrQuota if opts set a cap the grown group does not fit in.
func (s *Store) UpdateGroup(orgID, id string, fn func(*Group) error, opts ...WriteOption) (*Group, error) {
	const op = "update group"
	if err := need(op, "org id", orgID, "group id", id); err != nil {
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
		k := key(pGrp, orgID, id)
		old, g := new(Group), new(Group)
		if err := getJSON(txn, k, old); err != nil {
			return wrapNotFound(err, op, "group", id)
		}
		if err := getJSON(txn, k, g); err != nil {
			return err
		}
		if err := fn(g); err != nil {
			return err
		}
		if g.ID != id || g.OrgID != orgID {
			return invalid(op, "group ID and organization are immutable")
		}
		if err := need(op, "displayName", g.DisplayName); err != nil {
			return err
		}
		var err error
		if g.Members, err = dedupeMembers(op, g.Members); err != nil {
			return err
		}
		g.Updated = now()
		use := newUsage(orgID, opts)
		if err := writeGroupIndexes(txn, use, op, old, g); err != nil {
			return err
		}
		if stored, err = use.set(txn, k, g); err != nil {
			return err
		}
		return s.charge(txn, use, id)
	})
	if err != nil {
		return nil, err
	}
	out := new(Group)
	return out, json.Unmarshal(stored, out)
}

// DeleteGroup removes the group with its indexes and memberships.
func (s *Store) DeleteGroup(orgID, id string) error {
	const op = "delete group"
	if err := need(op, "org id", orgID, "group id", id); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	return s.update(op, func(txn Txn) error {
		k := key(pGrp, orgID, id)
		g := new(Group)
		if err := getJSON(txn, k, g); err != nil {
			return wrapNotFound(err, op, "group", id)
		}
		use := newUsage(orgID, nil)
		for ik := range groupUniqueKeys(g) {
			if err := use.del(txn, []byte(ik)); err != nil {
				return err
			}
		}
		for _, m := range g.Members {
			if err := use.del(txn, key(pGMem, orgID, m, id)); err != nil {
				return err
			}
		}
		if err := use.del(txn, k); err != nil {
			return err
		}
		if err := addCounter(txn, key(pCount, "groups", orgID), -1); err != nil {
			return err
		}
		return s.charge(txn, use, id)
	})
}

// ListGroups returns a page of the org's groups ordered by ID and the total
// number of groups; offset and limit work as in ListUsers.
func (s *Store) ListGroups(orgID string, offset, limit int) ([]*Group, int, error) {
	if err := need("list groups", "org id", orgID); err != nil {
		return nil, 0, err
	}
	if err := s.enter(); err != nil {
		return nil, 0, err
	}
	defer s.leave()
	groups := []*Group{}
	var total int
	err := s.view(func(txn Txn) error {
		var err error
		var version uint64
		if total, version, err = counterVersion(txn, key(pCount, "groups", orgID)); err != nil {
			return err
		}
		return s.listPage(txn, scanPrefix(pGrp, orgID), max(offset, 0), limit, version, func(b []byte) error {
			g := new(Group)
			if err := json.Unmarshal(b, g); err != nil {
				return err
			}
			groups = append(groups, g)
			return nil
		})
	})
	if err != nil {
		return nil, 0, err
	}
	return groups, total, nil
}

// GroupsOfUser returns the IDs of the groups the user belongs to, sorted,
// from the membership index (a scan of that one user's keys).
func (s *Store) GroupsOfUser(orgID, userID string) ([]string, error) {
	if err := need("groups of user", "org id", orgID, "user id", userID); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	ids := []string{}
	err := s.view(func(txn Txn) error {
		for _, k := range keysWithPrefix(txn, scanPrefix(pGMem, orgID, userID), nil, 0) {
			ids = append(ids, lastSegment(k))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// IsMember reports whether the user is a member of the group (one key
// lookup).
func (s *Store) IsMember(orgID, groupID, userID string) (bool, error) {
	if err := need("is member", "org id", orgID, "group id", groupID, "user id", userID); err != nil {
		return false, err
	}
	if err := s.enter(); err != nil {
		return false, err
	}
	defer s.leave()
	var ok bool
	err := s.view(func(txn Txn) error {
		var err error
		ok, err = exists(txn, key(pGMem, orgID, userID, groupID))
		return err
	})
	return ok, err
}
