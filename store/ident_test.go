package store

import (
	"errors"
	"slices"
	"testing"
	"time"
)

const (
	kelvin = "\u212A" // KELVIN SIGN: strings.ToLower makes it "k"
	longS  = "\u017F" // LONG S: strings.EqualFold matches it with "s"
)

// The observed attack, at the store: an address or name spelled with a
// character that Unicode folding maps onto an ASCII letter must not reach
// the record of the ASCII spelling.
func TestIdentityIndexesFoldASCIIOnly(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "oo")
	victim := mkUser(t, s, "oo", "kim.sass@example.com", "kim.sass@example.com")

	for _, alias := range []string{kelvin + "im.sass@example.com", "kim.sa" + longS + "s@example.com"} {
		if u, err := s.UserByUserName("oo", alias); !errors.Is(err, ErrNotFound) {
			t.Errorf("UserByUserName(%q) = %v, %v; want ErrNotFound", alias, u, err)
		}
		if u, err := s.UserByEmail("oo", alias); !errors.Is(err, ErrNotFound) {
			t.Errorf("UserByEmail(%q) = %v, %v; want ErrNotFound", alias, u, err)
		}
		if ids, err := s.UserIDsByEmail("oo", alias); err != nil || len(ids) != 0 {
			t.Errorf("UserIDsByEmail(%q) = %v, %v; want none", alias, ids, err)
		}
	}
	// The look-alike is a different user, not a duplicate of the victim.
	mkUser(t, s, "oo", kelvin+"im.sass@example.com")

	// ASCII case and the domain's U-label still match.
	for _, same := range []string{"Kim.Sass@EXAMPLE.com"} {
		if u, err := s.UserByUserName("oo", same); err != nil || u.ID != victim.ID {
			t.Errorf("UserByUserName(%q) = %v, %v; want the victim", same, u, err)
		}
		if u, err := s.UserByEmail("oo", same); err != nil || u.ID != victim.ID {
			t.Errorf("UserByEmail(%q) = %v, %v; want the victim", same, u, err)
		}
	}
	idn := mkUser(t, s, "oo", "jorg@bücher.de", "jorg@bücher.de")
	if u, err := s.UserByUserName("oo", "JORG@xn--bcher-kva.de"); err != nil || u.ID != idn.ID {
		t.Errorf("UserByUserName by A-label = %v, %v", u, err)
	}
	if u, err := s.UserByEmail("oo", "jorg@BÜCHER.de"); err != nil || u.ID != idn.ID {
		t.Errorf("UserByEmail by upper-case U-label = %v, %v", u, err)
	}

	g := &Group{OrgID: "oo", DisplayName: "ssogate-admins"}
	must(t, s.CreateGroup(g))
	if id, err := s.GroupIDByDisplayName("oo", longS+"sogate-admins"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GroupIDByDisplayName(long s) = %q, %v; want ErrNotFound", id, err)
	}
	if id, err := s.GroupIDByDisplayName("oo", "SSOGATE-Admins"); err != nil || id != g.ID {
		t.Errorf("GroupIDByDisplayName(ASCII case) = %q, %v", id, err)
	}
	must(t, s.CreateGroup(&Group{OrgID: "oo", DisplayName: longS + "sogate-admins"}))

	must(t, s.DeprovisionUser("oo", victim.ID))
	if gone, err := s.Deprovisioned("oo", "", kelvin+"im.sass@example.com", kelvin+"im.sass@example.com"); err != nil || gone {
		t.Errorf("Deprovisioned(look-alike) = %v, %v; want false", gone, err)
	}
	if gone, err := s.Deprovisioned("oo", "", "", "KIM.SASS@example.com"); err != nil || !gone {
		t.Errorf("Deprovisioned(ASCII case) = %v, %v; want true", gone, err)
	}
}

func TestLocalAccountsByEmailFoldsASCIIOnly(t *testing.T) {
	s := newTestStore(t)
	o := &Org{ID: "oo", Name: "O"}
	owner := &User{UserName: "kim@example.com", Emails: []Email{{Value: "kim@example.com"}}, Role: RoleAdmin, Source: SourceLocal, Active: true}
	inv := &Invitation{TokenHash: tokenHash("t1"), Purpose: InviteOwner, ExpiresAt: time.Now().Add(time.Hour)}
	must(t, s.CreateOrgWithOwner(o, owner, inv))
	if us, err := s.LocalAccountsByEmail(kelvin + "im@example.com"); err != nil || len(us) != 0 {
		t.Errorf("LocalAccountsByEmail(look-alike) = %v, %v; want none", us, err)
	}
	if us, err := s.LocalAccountsByEmail("KIM@example.com"); err != nil || len(us) != 1 {
		t.Errorf("LocalAccountsByEmail(ASCII case) = %v, %v; want the owner", us, err)
	}
}

// Indexes written by an older version with strings.ToLower are rebuilt at
// Open: the look-alike no longer finds the other record, and every record
// is found under its own spelling.
func TestOpenMigratesLegacyIndexes(t *testing.T) {
	s, dir := openTestStore(t)
	mkOrg(t, s, "oo")
	kelvinUser := mkUser(t, s, "oo", kelvin+"im@example.com", kelvin+"im@example.com")
	idnUser := mkUser(t, s, "oo", "Jorg@Bücher.DE", "Jorg@Bücher.DE")
	plain := mkUser(t, s, "oo", "Alice@Example.com", "alice@example.com")
	g := &Group{OrgID: "oo", DisplayName: longS + "sogate-admins"}
	must(t, s.CreateGroup(g))
	gone := mkUser(t, s, "oo", "gone@bücher.de", "gone@bücher.de")
	must(t, s.DeprovisionUser("oo", gone.ID))
	local := &User{UserName: "owner@bücher.de", Emails: []Email{{Value: "owner@bücher.de"}}, Role: RoleAdmin, Source: SourceLocal, Active: true}
	must(t, s.CreateOrgWithOwner(&Org{ID: "pp", Name: "P"}, local, &Invitation{TokenHash: tokenHash("t2"), Purpose: InviteOwner, ExpiresAt: time.Now().Add(time.Hour)}))

	// Turn the database into what version 1 wrote.
	err := rawUpdate(s, func(txn Txn) error {
		for _, u := range []*User{kelvinUser, idnUser, plain} {
			must(t, del(txn, key(pUName, "oo", userKey(u.UserName))))
			_, err := setJSON(txn, key(pUName, "oo", legacyFold(u.UserName)), u.ID, 0)
			must(t, err)
			must(t, del(txn, key(pUMail, "oo", userKey(u.Emails[0].Value), u.ID)))
			_, err = setJSON(txn, key(pUMail, "oo", legacyFold(u.Emails[0].Value), u.ID), u.ID, 0)
			must(t, err)
		}
		must(t, del(txn, groupNameKey("oo", g.DisplayName, g.ID)))
		_, err := setJSON(txn, key(pGName, "oo", legacyFold(g.DisplayName)), g.ID, 0)
		must(t, err)
		for _, kind := range []string{udelUserName, udelEmail} {
			must(t, del(txn, key(pUDel, "oo", kind, userKey("gone@bücher.de"))))
			must(t, txn.Set(key(pUDel, "oo", kind, legacyFold("gone@bücher.de")), []byte(`"2020-01-01T00:00:00Z"`), 0))
		}
		must(t, del(txn, key(pLMail, userKey(local.UserName), "pp")))
		_, err = setJSON(txn, key(pLMail, legacyFold(local.UserName), "pp"), local.ID, 0)
		must(t, err)
		return del(txn, key(pMeta, metaIndexVersionKey))
	})
	must(t, err)
	// What made the old indexes dangerous: the ASCII spelling finds the
	// Kelvin-sign user.
	if u, err := s.UserByUserName("oo", "kim@example.com"); err != nil || u.ID != kelvinUser.ID {
		t.Fatalf("test premise: the legacy index should map kim@ to the Kelvin user, got %v, %v", u, err)
	}
	must(t, s.Close())

	for round := 1; round <= 2; round++ { // the second Open finds nothing to do
		s, err = reopenStore(dir, Options{GCInterval: -1})
		must(t, err)
		if u, err := s.UserByUserName("oo", "kim@example.com"); !errors.Is(err, ErrNotFound) {
			t.Errorf("round %d: UserByUserName(kim@) = %v, %v; want ErrNotFound", round, u, err)
		}
		if u, err := s.UserByEmail("oo", "kim@example.com"); !errors.Is(err, ErrNotFound) {
			t.Errorf("round %d: UserByEmail(kim@) = %v, %v; want ErrNotFound", round, u, err)
		}
		idnName := "jorg@xn--bcher-kva.de"
		if round == 2 {
			idnName = "JORG2@example.com" // renamed in round 1
		}
		for _, c := range []struct {
			name string
			want *User
		}{{kelvin + "im@example.com", kelvinUser}, {idnName, idnUser}, {"ALICE@example.com", plain}} {
			if u, err := s.UserByUserName("oo", c.name); err != nil || u.ID != c.want.ID {
				t.Errorf("round %d: UserByUserName(%q) = %v, %v", round, c.name, u, err)
			}
			if round == 2 && c.want == idnUser {
				continue // its email was not changed with its userName
			}
			if u, err := s.UserByEmail("oo", c.name); err != nil || u.ID != c.want.ID {
				t.Errorf("round %d: UserByEmail(%q) = %v, %v", round, c.name, u, err)
			}
		}
		if id, err := s.GroupIDByDisplayName("oo", "ssogate-admins"); !errors.Is(err, ErrNotFound) {
			t.Errorf("round %d: GroupIDByDisplayName(ssogate-admins) = %q, %v; want ErrNotFound", round, id, err)
		}
		if id, err := s.GroupIDByDisplayName("oo", g.DisplayName); err != nil || id != g.ID {
			t.Errorf("round %d: GroupIDByDisplayName(long s) = %q, %v", round, id, err)
		}
		if d, err := s.Deprovisioned("oo", "", "gone@xn--bcher-kva.de", "gone@xn--bcher-kva.de"); err != nil || !d {
			t.Errorf("round %d: Deprovisioned(A-label) = %v, %v; want true", round, d, err)
		}
		if us, err := s.LocalAccountsByEmail("owner@xn--bcher-kva.de"); err != nil || len(us) != 1 || us[0].ID != local.ID {
			t.Errorf("round %d: LocalAccountsByEmail(A-label) = %v, %v", round, us, err)
		}
		// No legacy key is left behind to be found later.
		for _, k := range append(rawKeys(t, s, pUName+"/"), rawKeys(t, s, pUMail+"/")...) {
			if slices.Contains([]string{"uname/oo/kim@example.com", "uname/oo/jorg@bücher.de"}, k) {
				t.Errorf("round %d: legacy key %q survived", round, k)
			}
		}
		// Updating and deleting a migrated user leaves no index behind.
		_, err = s.UpdateUser("oo", idnUser.ID, func(u *User) error { u.UserName = "jorg2@example.com"; return nil })
		must(t, err)
		if round == 2 {
			must(t, s.DeleteUser("oo", idnUser.ID))
			for _, k := range rawKeys(t, s, pUName+"/o/") {
				if k == "uname/oo/jorg@xn--bcher-kva.de" || k == "uname/oo/jorg2@example.com" {
					t.Errorf("index %q outlived its user", k)
				}
			}
		}
		must(t, s.Close())
	}
}

// Two userNames the old folding kept apart and the new rule joins (a
// U-label domain and its A-label) do not stop the store from opening:
// the first keeps the name, the other is found by ID.
func TestOpenMigrationSurvivesJoinedNames(t *testing.T) {
	s, dir := openTestStore(t)
	mkOrg(t, s, "oo")
	first := mkUser(t, s, "oo", "ann@xn--bcher-kva.de")
	second := &User{ID: "second", OrgID: "oo", UserName: "ann@bücher.de", Active: true, Source: SourceSCIM}
	err := rawUpdate(s, func(txn Txn) error {
		if _, err := setJSON(txn, key(pUser, "oo", second.ID), second, 0); err != nil {
			return err
		}
		if _, err := setJSON(txn, key(pUName, "oo", legacyFold(second.UserName)), second.ID, 0); err != nil {
			return err
		}
		return del(txn, key(pMeta, metaIndexVersionKey))
	})
	must(t, err)
	must(t, s.Close())

	s, err = reopenStore(dir, Options{GCInterval: -1})
	must(t, err)
	defer s.Close()
	if u, err := s.UserByUserName("oo", "ann@bücher.de"); err != nil || u.ID != first.ID {
		t.Errorf("UserByUserName = %v, %v; want the first holder", u, err)
	}
	if u, err := s.GetUser("oo", second.ID); err != nil || u.UserName != second.UserName {
		t.Errorf("GetUser(second) = %v, %v", u, err)
	}
	for _, k := range rawKeys(t, s, pUName+"/oo/") {
		if k == "uname/oo/ann@bücher.de" {
			t.Errorf("legacy key %q survived", k)
		}
	}
	// Deleting the other leaves the holder's index alone.
	must(t, s.DeleteUser("oo", second.ID))
	if u, err := s.UserByUserName("oo", "ann@xn--bcher-kva.de"); err != nil || u.ID != first.ID {
		t.Errorf("after deleting the other: UserByUserName = %v, %v", u, err)
	}
}

// Version 2 held one group per name (gname/<org>/<name>); version 3 one
// key per group, so that names may be shared. Open moves the keys.
func TestGroupNameIndexFromVersion2(t *testing.T) {
	s, dir := openTestStore(t)
	mkOrg(t, s, "oo")
	g := &Group{OrgID: "oo", DisplayName: "Admins"}
	must(t, s.CreateGroup(g))
	err := rawUpdate(s, func(txn Txn) error {
		must(t, del(txn, groupNameKey("oo", g.DisplayName, g.ID)))
		_, err := setJSON(txn, key(pGName, "oo", groupKey(g.DisplayName)), g.ID, 0)
		must(t, err)
		_, err = setJSON(txn, key(pMeta, metaIndexVersionKey), 2, 0)
		return err
	})
	must(t, err)
	if _, err := s.GroupIDByDisplayName("oo", "admins"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("test premise: the version 2 key should not be found, got %v", err)
	}
	must(t, s.Close())
	s, err = reopenStore(dir, Options{GCInterval: -1})
	must(t, err)
	defer s.Close()
	if id, err := s.GroupIDByDisplayName("oo", "ADMINS"); err != nil || id != g.ID {
		t.Fatalf("after migration: %q, %v", id, err)
	}
	if keys := rawKeys(t, s, pGName+"/oo/"); len(keys) != 1 || keys[0] != string(groupNameKey("oo", "Admins", g.ID)) {
		t.Fatalf("name index keys: %q", keys)
	}
	// A second group of that name now fits beside it.
	must(t, s.CreateGroup(&Group{OrgID: "oo", DisplayName: "admins"}))
	if _, err := s.GroupIDByDisplayName("oo", "Admins"); !errors.Is(err, ErrAmbiguous) {
		t.Fatalf("two groups: %v", err)
	}
}

// A database a newer ssogate migrated is refused rather than read with
// the wrong index layout.
func TestNewerIndexVersionRefused(t *testing.T) {
	s, dir := openTestStore(t)
	err := rawUpdate(s, func(txn Txn) error {
		_, err := setJSON(txn, key(pMeta, metaIndexVersionKey), indexVersion+1, 0)
		return err
	})
	must(t, err)
	must(t, s.Close())
	if s2, err := reopenStore(dir, Options{GCInterval: -1}); err == nil {
		_ = s2.Close()
		t.Fatal("Open accepted a newer index version")
	}
}
