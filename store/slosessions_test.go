package store

import (
	"testing"
	"time"
)

// TestDeleteSAMLSessionsByNameID: an IdP's logout ends the org's SAML
// sessions of exactly that NameID (and SessionIndex when given), whoever's
// account they are, and nothing else: not the same user's password
// session, not a NameID differing in case, not another org's.
func TestDeleteSAMLSessionsByNameID(t *testing.T) {
	s, alice := sessionFixture(t)
	bob := mkUser(t, s, "acme", "bob")
	mkOrg(t, s, "other")
	carol := mkUser(t, s, "other", "carol")
	exp := time.Now().Add(time.Hour)
	for _, sess := range []*Session{
		{ID: "i1", OrgID: "acme", UserID: alice.ID, AuthMethod: "saml", NameID: "n1", SessionIndex: "idx1"},
		{ID: "i2", OrgID: "acme", UserID: alice.ID, AuthMethod: "saml", NameID: "n1", SessionIndex: "idx2"},
		{ID: "none", OrgID: "acme", UserID: bob.ID, AuthMethod: "saml", NameID: "n1"},
		{ID: "pw", OrgID: "acme", UserID: alice.ID, AuthMethod: "password"},
		{ID: "case", OrgID: "acme", UserID: bob.ID, AuthMethod: "saml", NameID: "N1"},
		{ID: "n2", OrgID: "acme", UserID: bob.ID, AuthMethod: "saml", NameID: "n2"},
		{ID: "org", OrgID: "other", UserID: carol.ID, AuthMethod: "saml", NameID: "n1"},
	} {
		sess.ExpiresAt = exp
		must(t, s.CreateSession(sess))
	}
	alive := func(ids ...string) {
		t.Helper()
		for _, id := range ids {
			if _, err := s.GetSession(id); err != nil {
				t.Errorf("session %s: %v", id, err)
			}
		}
	}
	gone := func(ids ...string) {
		t.Helper()
		for _, id := range ids {
			if _, err := s.GetSession(id); err == nil {
				t.Errorf("session %s survived", id)
			}
		}
	}

	wantErr(t, func() error { _, err := s.DeleteSAMLSessions("acme", "", nil); return err }(), ErrInvalid)
	// A SessionIndex picks its session; one that recorded none goes too.
	n, err := s.DeleteSAMLSessions("acme", "n1", []string{"idx1"})
	must(t, err)
	if n != 2 {
		t.Errorf("ended %d sessions, want 2", n)
	}
	gone("i1", "none")
	alive("i2", "pw", "case", "n2", "org")

	n, err = s.DeleteSAMLSessions("acme", "n1", nil)
	must(t, err)
	if n != 1 {
		t.Errorf("ended %d sessions, want 1", n)
	}
	gone("i2")
	alive("pw", "case", "n2", "org")
	if keys := rawKeys(t, s, "sessname/acme/"+nameIDHash("n1")); len(keys) != 0 {
		t.Errorf("leftover index keys %v", keys)
	}

	// Every other way a session ends takes its index key along.
	must(t, s.DeleteSession("case"))
	_, err = s.DeleteUserSessions("acme", bob.ID)
	must(t, err)
	_, err = s.DeleteOrgSessions("other", "saml")
	must(t, err)
	for _, p := range []string{"sessname/acme/", "sessname/other/"} {
		if keys := rawKeys(t, s, p); len(keys) != 0 {
			t.Errorf("leftover index keys %v", keys)
		}
	}
}
