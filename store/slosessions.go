package store

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
)

// The sessname index finds an org's SAML sessions by the NameID of the
// assertion that started them, which is what an IdP's LogoutRequest
// names: not an account (a transient NameID names none, and a SCIM
// externalId may equal another user's NameID). Its keys carry a hash of
// the NameID (a NameID may be long; the record holds the value, compared
// exactly) and live as long as their session's TTL.

// sessNameKey is the sessname index key of a session with a NameID.
func sessNameKey(sess *Session) []byte {
	return key(pSessName, sess.OrgID, nameIDHash(sess.NameID), sess.ID)
}

func nameIDHash(nameID string) string {
	h := sha256.Sum256([]byte(nameID))
	return hex.EncodeToString(h[:])
}

// deleteSessionNameKey removes sess's sessname index key, if it has one.
func deleteSessionNameKey(txn Txn, sess *Session) error {
	if sess.NameID == "" {
		return nil
	}
	return del(txn, sessNameKey(sess))
}

// DeleteSAMLSessions ends the org's SAML sessions started by an assertion
// whose NameID is exactly nameID and, when sessionIndexes is not empty,
// whose IdP session is one of them (a session that recorded none ends
// too: when in doubt, a logout ends more, never less). Password and
// backup sessions of the same user stay. It returns how many it ended.
// Sessions from before the index was kept are not found.
func (s *Store) DeleteSAMLSessions(orgID, nameID string, sessionIndexes []string) (int, error) {
	const op = "delete saml sessions"
	if err := need(op, "org id", orgID, "name id", nameID); err != nil {
		return 0, err
	}
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	n, err := s.forEachKeyBatch(scanPrefix(pSessName, orgID, nameIDHash(nameID)), func(txn Txn, keys [][]byte) (int, error) {
		n := 0
		for _, k := range keys {
			id := lastSegment(k)
			sess := new(Session)
			switch err := getJSON(txn, key(pSess, id), sess); {
			case err == ErrNotFound:
				if err := del(txn, k); err != nil { // its session expired or ended
					return 0, err
				}
				continue
			case err != nil:
				return 0, err
			}
			// The hash names the bucket; the record decides.
			if sess.OrgID != orgID || sess.AuthMethod != "saml" || sess.NameID != nameID {
				continue
			}
			if len(sessionIndexes) > 0 && sess.SessionIndex != "" && !slices.Contains(sessionIndexes, sess.SessionIndex) {
				continue
			}
			if err := del(txn, k); err != nil {
				return 0, err
			}
			if err := deleteSessionKeys(txn, orgID, sess.UserID, id); err != nil {
				return 0, err
			}
			n++
		}
		return n, nil
	})
	if err != nil {
		return n, fmt.Errorf("store: %s: %w", op, err)
	}
	return n, nil
}
