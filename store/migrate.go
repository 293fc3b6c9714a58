package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"go.uber.org/zap"
)

// Index versions, kept under meta/index-version.
//
// Version 1 (no marker) keyed the userName, email, group displayName and
// local-address indexes and the deprovisioning markers with
// strings.ToLower, whose Unicode folding put "\u212Aim@example.com"
// (KELVIN SIGN) under the key of "kim@example.com". Version 2 keys them
// with userKey and groupKey (ASCII folding, IDNA A-label domains).
// Version 3 keys the group displayName index by name and group ID
// (gname/<org>/<name>/<id>), since names may be shared.
const (
	indexVersion        = 3
	migrateBatch        = 500
	metaIndexVersionKey = "index-version"
)

// legacyFold is the index form of version 1; only the migration uses it.
func legacyFold(s string) string { return strings.ToLower(s) }

// migrateIndexes brings the identity indexes to indexVersion, once, at
// Open, before anyone reads them. It makes one pass over the user and
// group records and the deprovisioning markers, replacing each index key
// built by legacyFold with the current one. Every step is idempotent, so a
// crash halfway is finished by the next Open; the version is written last.
func (s *Store) migrateIndexes() error {
	vk := key(pMeta, metaIndexVersionKey)
	var v int
	err := s.view(func(txn Txn) error { return getJSON(txn, vk, &v) })
	if err != nil && err != ErrNotFound {
		return fmt.Errorf("store: reading index version: %w", err)
	}
	if v > indexVersion {
		// A newer ssogate moved the indexes: read with this one's layout,
		// look-ups would miss (an admin group by name among them) and
		// writes would mix the two.
		return fmt.Errorf("store: the database's indexes are version %d, newer than this ssogate's %d; run the newer version", v, indexVersion)
	}
	if v == indexVersion {
		return nil
	}
	var st migrateStats
	if err := s.migrateBatches(scanPrefix(pUser), func(txn Txn, _, val []byte) error {
		u := new(User)
		if err := json.Unmarshal(val, u); err != nil {
			return err
		}
		return migrateUser(txn, u, &st)
	}); err != nil {
		return fmt.Errorf("store: migrating user indexes: %w", err)
	}
	if err := s.migrateBatches(scanPrefix(pGrp), func(txn Txn, _, val []byte) error {
		g := new(Group)
		if err := json.Unmarshal(val, g); err != nil {
			return err
		}
		return migrateGroup(txn, g, &st)
	}); err != nil {
		return fmt.Errorf("store: migrating group indexes: %w", err)
	}
	if err := s.migrateBatches(scanPrefix(pUDel), func(txn Txn, k, val []byte) error {
		return migrateMarker(txn, k, val, &st)
	}); err != nil {
		return fmt.Errorf("store: migrating deprovisioning markers: %w", err)
	}
	if err := s.update("migrate indexes", func(txn Txn) error {
		_, err := setJSON(txn, vk, indexVersion, 0)
		return err
	}); err != nil {
		return fmt.Errorf("store: writing index version: %w", err)
	}
	s.log.Info("identity indexes migrated",
		zap.Int("from_version", max(v, 1)), zap.Int("to_version", indexVersion),
		zap.Int("keys_rewritten", st.rewritten), zap.Int("conflicts", st.conflicts))
	if st.conflicts > 0 {
		s.log.Warn("records whose userName or group name now equals another's are found by ID only; rename them",
			zap.Int("count", st.conflicts), zap.Strings("record_ids", st.conflicted))
	}
	return nil
}

type migrateStats struct {
	rewritten, conflicts int
	conflicted           []string // record IDs, the first few
}

func (st *migrateStats) conflict(id string) {
	st.conflicts++
	if len(st.conflicted) < 20 {
		st.conflicted = append(st.conflicted, id)
	}
}

// migrateBatches calls fn for every key under p, migrateBatch keys per
// write transaction so that none outgrows Badger's transaction limit.
func (s *Store) migrateBatches(p []byte, fn func(txn Txn, k, v []byte) error) error {
	from := p
	for from != nil {
		type kv struct{ k, v []byte }
		var batch []kv
		var next []byte
		err := s.view(func(txn Txn) error {
			it := txn.Iterator(IterOptions{Prefix: p})
			defer it.Close()
			for it.Seek(from); it.Valid(); it.Next() {
				if len(batch) == migrateBatch {
					next = bytes.Clone(it.Key())
					return nil
				}
				v, err := it.Value()
				if err != nil {
					return fmt.Errorf("read %q: %w", it.Key(), err)
				}
				batch = append(batch, kv{bytes.Clone(it.Key()), v})
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := s.update("migrate indexes", func(txn Txn) error {
			for _, e := range batch {
				if err := fn(txn, e.k, e.v); err != nil {
					return fmt.Errorf("%q: %w", e.k, err)
				}
			}
			return nil
		}); err != nil {
			return err
		}
		from = next
	}
	return nil
}

func migrateUser(txn Txn, u *User, st *migrateStats) error {
	if err := migrateKey(txn, key(pUName, u.OrgID, legacyFold(u.UserName)), key(pUName, u.OrgID, userKey(u.UserName)), u.ID, true, st); err != nil {
		return err
	}
	for _, e := range u.Emails {
		if e.Value == "" {
			continue
		}
		if err := migrateKey(txn, key(pUMail, u.OrgID, legacyFold(e.Value), u.ID), key(pUMail, u.OrgID, userKey(e.Value), u.ID), u.ID, false, st); err != nil {
			return err
		}
	}
	if u.Source == SourceLocal {
		return migrateKey(txn, key(pLMail, legacyFold(u.UserName), u.OrgID), key(pLMail, userKey(u.UserName), u.OrgID), u.ID, true, st)
	}
	return nil
}

// migrateGroup moves a group's name index entry from the key of version 1
// or 2 (one group per name) to the key of version 3 (one per group).
func migrateGroup(txn Txn, g *Group, st *migrateStats) error {
	for _, old := range [][]byte{key(pGName, g.OrgID, legacyFold(g.DisplayName)), key(pGName, g.OrgID, groupKey(g.DisplayName))} {
		if err := dropIfHeld(txn, old, g.ID); err != nil {
			return err
		}
	}
	nk := groupNameKey(g.OrgID, g.DisplayName, g.ID)
	if ok, err := exists(txn, nk); err != nil || ok {
		return err
	}
	if _, err := setJSON(txn, nk, g.ID, 0); err != nil {
		return err
	}
	st.rewritten++
	return nil
}

// migrateKey moves an index entry holding id from old to new. The old key
// goes only if it holds id; a unique new key that another record already
// holds (two values the old folding kept apart and the new one joins, as
// a U-label and its A-label) is left to that record and reported: the
// later record is then found by ID only, never by the other's name.
func migrateKey(txn Txn, old, new []byte, id string, unique bool, st *migrateStats) error {
	if bytes.Equal(old, new) {
		return nil
	}
	if unique {
		var holder string
		switch err := getJSON(txn, new, &holder); {
		case err == nil && holder != id:
			st.conflict(id)
			return dropIfHeld(txn, old, id)
		case err != nil && err != ErrNotFound:
			return err
		}
	}
	if err := dropIfHeld(txn, old, id); err != nil {
		return err
	}
	if _, err := setJSON(txn, new, id, 0); err != nil {
		return err
	}
	st.rewritten++
	return nil
}

func dropIfHeld(txn Txn, k []byte, id string) error {
	var holder string
	switch err := getJSON(txn, k, &holder); {
	case err == nil && holder == id:
		return del(txn, k)
	case err != nil && err != ErrNotFound:
		return err
	}
	return nil
}

// migrateMarker rekeys a deprovisioning marker udel/<org>/<kind>/<value>.
// Its value is already legacy-folded and the user is gone, so the new key
// is derived from it: the marker may stand for more spellings than the
// user had, which only ever refuses a sign-in.
func migrateMarker(txn Txn, k, val []byte, st *migrateStats) error {
	parts := strings.Split(string(k), "/")
	if len(parts) != 4 || (parts[2] != udelUserName && parts[2] != udelEmail) {
		return nil
	}
	nk := key(pUDel, unesc(parts[1]), parts[2], userKey(unesc(parts[3])))
	if bytes.Equal(nk, k) {
		return nil
	}
	if err := txn.Set(nk, val, 0); err != nil {
		return fmt.Errorf("write %q: %w", nk, err)
	}
	st.rewritten++
	return del(txn, k)
}
