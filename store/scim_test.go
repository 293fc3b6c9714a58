package store

import (
	"bytes"
	"slices"
	"testing"
	"time"
)

func TestDeprovisionUser(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "acme")
	mkOrg(t, s, "other")
	u := &User{OrgID: "acme", UserName: "Alice@Acme.com", ExternalID: "00u1", Active: true, Source: SourceSCIM,
		Emails: []Email{{Value: "alice@acme.com"}, {Value: "Al@Acme.com"}}}
	must(t, s.CreateUser(u))
	keep := mkUser(t, s, "acme", "bob", "bob@acme.com")
	g := &Group{OrgID: "acme", DisplayName: "Admins", Members: []string{u.ID, keep.ID}}
	must(t, s.CreateGroup(g))
	must(t, s.CreateSession(&Session{ID: "s1", OrgID: "acme", UserID: u.ID, ExpiresAt: time.Now().Add(time.Hour)}))

	dep := func(org, ext, name, email string) bool {
		t.Helper()
		ok, err := s.Deprovisioned(org, ext, name, email)
		must(t, err)
		return ok
	}
	if dep("acme", "00u1", "alice@acme.com", "al@acme.com") {
		t.Fatal("a live user counts as deprovisioned")
	}

	must(t, s.DeprovisionUser("acme", u.ID))
	wantErr(t, s.DeprovisionUser("acme", u.ID), ErrNotFound)
	_, err := s.GetUser("acme", u.ID)
	wantErr(t, err, ErrNotFound)
	_, err = s.GetSession("s1")
	wantErr(t, err, ErrNotFound)
	if gg, _ := s.GetGroup("acme", g.ID); !slices.Equal(gg.Members, []string{keep.ID}) {
		t.Fatalf("members after deprovisioning = %v", gg.Members)
	}
	if n, _ := s.CountUsers("acme"); n != 1 {
		t.Fatalf("CountUsers = %d", n)
	}

	for _, c := range []struct {
		org, ext, name, email string
		want                  bool
	}{
		{"acme", "00u1", "", "", true},
		{"acme", "00U1", "", "", false}, // externalId is exact
		{"acme", "", "ALICE@acme.COM", "", true},
		{"acme", "", "", "AL@acme.com", true},
		{"acme", "", "", "alice@acme.com", true},
		{"acme", "nope", "bob", "bob@acme.com", false},
		{"acme", "", "", "", false},
		{"other", "00u1", "alice@acme.com", "alice@acme.com", false},
	} {
		if got := dep(c.org, c.ext, c.name, c.email); got != c.want {
			t.Errorf("Deprovisioned(%q, %q, %q, %q) = %v, want %v", c.org, c.ext, c.name, c.email, got, c.want)
		}
	}
	_, err = s.Deprovisioned("", "x", "", "")
	wantErr(t, err, ErrInvalid)

	// Provisioning the person again lifts every marker of the new record.
	back := &User{OrgID: "acme", UserName: "alice@acme.com", ExternalID: "00u1", Active: true, Source: SourceSCIM,
		Emails: []Email{{Value: "alice@acme.com"}}}
	must(t, s.ProvisionUser(back))
	if back.ID == "" || back.ID == u.ID {
		t.Fatalf("ProvisionUser ID = %q", back.ID)
	}
	if dep("acme", "00u1", "alice@acme.com", "alice@acme.com") {
		t.Fatal("markers survived re-provisioning")
	}
	// The address the new record does not have stays marked.
	if !dep("acme", "", "", "al@acme.com") {
		t.Fatal("unrelated marker lifted")
	}
	// ProvisionUser keeps CreateUser's rules, and a refused one lifts nothing.
	wantErr(t, s.ProvisionUser(&User{OrgID: "acme", UserName: "BOB", Emails: []Email{{Value: "al@acme.com"}}}), ErrConflict)
	if !dep("acme", "", "", "al@acme.com") {
		t.Fatal("a failed ProvisionUser lifted a marker")
	}

	must(t, s.DeleteOrg("acme"))
	if keys := rawKeys(t, s, "udel/acme/"); len(keys) != 0 {
		t.Fatalf("markers survived DeleteOrg: %v", keys)
	}
}

func TestTouchSCIMToken(t *testing.T) {
	s, dir := openTestStore(t)
	created := time.Now().UTC().Add(-time.Hour).Round(0)
	must(t, s.CreateOrg(&Org{ID: "acme", Name: "Acme", SCIMTokenHash: []byte("h"), SCIMTokenCreated: created}))
	must(t, s.CreateOrg(&Org{ID: "notoken", Name: "No token"}))
	before, err := s.GetOrg("acme")
	must(t, err)

	used := created.Add(30 * time.Minute)
	must(t, s.TouchSCIMToken("acme", used))
	must(t, s.TouchSCIMToken("acme", used.Add(-time.Minute))) // older: ignored
	must(t, s.TouchSCIMToken("notoken", used))
	must(t, s.TouchSCIMToken("ghost", used))
	wantErr(t, s.TouchSCIMToken("", used), ErrInvalid)

	if !waitUntil(5*time.Second, func() bool {
		o, err := s.GetOrg("acme")
		return err == nil && o.SCIMTokenLastUsed.Equal(used)
	}) {
		t.Fatal("touch never written")
	}
	o, _ := s.GetOrg("acme")
	if !o.Updated.Equal(before.Updated) {
		t.Errorf("a touch changed Updated: %v → %v", before.Updated, o.Updated)
	}
	if n, _ := s.GetOrg("notoken"); !n.SCIMTokenLastUsed.IsZero() {
		t.Error("touch recorded for an org without a token")
	}
	if keys := rawKeys(t, s, "org/ghost"); len(keys) != 0 {
		t.Errorf("touch created an org: %v", keys)
	}

	// A touch from before the current token (it raced a rotation) is dropped;
	// a later one is kept across Close.
	rotated := used.Add(time.Minute)
	_, err = s.UpdateOrg("acme", func(o *Org) error {
		o.SCIMTokenHash, o.SCIMTokenCreated, o.SCIMTokenLastUsed = []byte("h2"), rotated, time.Time{}
		return nil
	})
	must(t, err)
	must(t, s.TouchSCIMToken("acme", used.Add(30*time.Second)))
	s.flushSCIMTouches()
	if o, _ := s.GetOrg("acme"); !o.SCIMTokenLastUsed.IsZero() {
		t.Fatalf("stale touch written: %v", o.SCIMTokenLastUsed)
	}
	last := rotated.Add(time.Second)
	must(t, s.TouchSCIMToken("acme", last))
	must(t, s.Close())
	s2, err := reopenStore(dir, Options{GCInterval: -1})
	must(t, err)
	defer s2.Close()
	if o, _ := s2.GetOrg("acme"); !o.SCIMTokenLastUsed.Equal(last) || !bytes.Equal(o.SCIMTokenHash, []byte("h2")) {
		t.Fatalf("after Close: last used %v, hash %q", o.SCIMTokenLastUsed, o.SCIMTokenHash)
	}
}

func TestIndexOnlyLookups(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "acme")
	mkOrg(t, s, "other")
	g := &Group{OrgID: "acme", DisplayName: "Gateway Admins", ExternalID: "00g1"}
	must(t, s.CreateGroup(g))
	must(t, s.CreateGroup(&Group{OrgID: "other", DisplayName: "Gateway Admins", ExternalID: "00g1"}))

	if id, err := s.GroupIDByExternalID("acme", "00g1"); err != nil || id != g.ID {
		t.Fatalf("GroupIDByExternalID = %q, %v", id, err)
	}
	if id, err := s.GroupIDByDisplayName("acme", "gateway ADMINS"); err != nil || id != g.ID {
		t.Fatalf("GroupIDByDisplayName = %q, %v", id, err)
	}
	_, err := s.GroupIDByExternalID("acme", "00G1")
	wantErr(t, err, ErrNotFound)
	_, err = s.GroupIDByDisplayName("acme", "nope")
	wantErr(t, err, ErrNotFound)
	_, err = s.GroupIDByDisplayName("acme", "")
	wantErr(t, err, ErrInvalid)

	a := mkUser(t, s, "acme", "a", "Shared@acme.com")
	b := mkUser(t, s, "acme", "b", "shared@ACME.com", "b@acme.com")
	mkUser(t, s, "other", "c", "shared@acme.com")
	ids, err := s.UserIDsByEmail("acme", "SHARED@acme.com")
	must(t, err)
	want := []string{a.ID, b.ID}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("UserIDsByEmail = %v, want %v", ids, want)
	}
	if ids, err := s.UserIDsByEmail("acme", "none@acme.com"); err != nil || ids == nil || len(ids) != 0 {
		t.Fatalf("UserIDsByEmail(none) = %#v, %v", ids, err)
	}
}

func TestCreateUsers(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "acme")
	mkOrg(t, s, "other")
	mkUser(t, s, "acme", "taken")
	batch := func(names ...string) []*User {
		var us []*User
		for _, n := range names {
			us = append(us, &User{OrgID: "acme", UserName: n, ExternalID: "x-" + n, Active: true, Emails: []Email{{Value: n + "@acme.com"}}})
		}
		return us
	}
	// All or nothing.
	wantErr(t, s.CreateUsers(batch("a", "TAKEN", "b")), ErrConflict)
	wantErr(t, s.CreateUsers(batch("c", "C")), ErrConflict)
	if n, _ := s.CountUsers("acme"); n != 1 {
		t.Fatalf("a refused batch left %d users", n)
	}
	if keys := rawKeys(t, s, "uname/acme/a"); len(keys) != 0 {
		t.Fatalf("a refused batch left index keys %v", keys)
	}
	mixed := batch("d")
	mixed = append(mixed, &User{OrgID: "other", UserName: "e"})
	wantErr(t, s.CreateUsers(mixed), ErrInvalid)
	wantErr(t, s.CreateUsers([]*User{{OrgID: "ghost", UserName: "g"}}), ErrNotFound)
	must(t, s.CreateUsers(nil))

	us := batch("a", "b", "c")
	must(t, s.CreateUsers(us))
	if n, _ := s.CountUsers("acme"); n != 4 {
		t.Fatalf("CountUsers = %d", n)
	}
	for _, u := range us {
		if u.ID == "" || u.Created.IsZero() {
			t.Fatalf("user not filled in: %+v", u)
		}
		got, err := s.UserByExternalID("acme", "x-"+u.UserName)
		if err != nil || got.ID != u.ID {
			t.Fatalf("UserByExternalID(%s) = %+v, %v", u.UserName, got, err)
		}
		if got, err := s.UserByEmail("acme", u.UserName+"@ACME.com"); err != nil || got.ID != u.ID {
			t.Fatalf("UserByEmail(%s) = %+v, %v", u.UserName, got, err)
		}
	}
}
