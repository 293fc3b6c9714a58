package store

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestUserCreateAndLookups(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "acme")
	mkOrg(t, s, "other")

	wantErr(t, s.CreateUser(&User{OrgID: "acme"}), ErrInvalid)
	wantErr(t, s.CreateUser(&User{UserName: "x"}), ErrInvalid)
	wantErr(t, s.CreateUser(&User{OrgID: "ghost", UserName: "x"}), ErrNotFound)
	wantErr(t, s.CreateUser(&User{OrgID: "acme", UserName: "x", Emails: []Email{{Value: ""}}}), ErrInvalid)

	u := &User{OrgID: "acme", UserName: "Alice@Acme.com", ExternalID: "Ext/1",
		Emails: []Email{{Value: "Alice@Acme.com", Primary: true}, {Value: "a.l/ice@acme.com"}},
		SCIM:   map[string]any{"title": "CEO"}}
	must(t, s.CreateUser(u))
	if u.ID == "" || u.Created.IsZero() || u.Updated.IsZero() {
		t.Fatalf("CreateUser did not fill in ID/Created/Updated: %+v", u)
	}

	for name, get := range map[string]func() (*User, error){
		"GetUser":            func() (*User, error) { return s.GetUser("acme", u.ID) },
		"UserByUserName":     func() (*User, error) { return s.UserByUserName("acme", "aLiCe@aCmE.cOm") },
		"UserByExternalID":   func() (*User, error) { return s.UserByExternalID("acme", "Ext/1") },
		"UserByEmail":        func() (*User, error) { return s.UserByEmail("acme", "ALICE@acme.com") },
		"UserByEmail(slash)": func() (*User, error) { return s.UserByEmail("acme", "A.L/ICE@acme.com") },
	} {
		got, err := get()
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got.ID != u.ID || got.SCIM["title"] != "CEO" || !got.Created.Equal(u.Created) {
			t.Errorf("%s = %+v", name, got)
		}
	}
	// externalId is exact; nothing leaks to another org.
	_, err := s.UserByExternalID("acme", "ext/1")
	wantErr(t, err, ErrNotFound)
	_, err = s.UserByUserName("other", "alice@acme.com")
	wantErr(t, err, ErrNotFound)
	_, err = s.GetUser("other", u.ID)
	wantErr(t, err, ErrNotFound)
	_, err = s.UserByEmail("other", "alice@acme.com")
	wantErr(t, err, ErrNotFound)
	_, err = s.UserByEmail("acme", "alice@acme.co")
	wantErr(t, err, ErrNotFound)

	// Returned values are copies.
	got, _ := s.GetUser("acme", u.ID)
	got.Emails[0].Value = "mutated"
	got.SCIM["title"] = "mutated"
	again, _ := s.GetUser("acme", u.ID)
	if again.Emails[0].Value != "Alice@Acme.com" || again.SCIM["title"] != "CEO" {
		t.Fatal("GetUser returned shared state")
	}
}

func TestUserUniqueness(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "acme")
	mkOrg(t, s, "other")
	a := &User{OrgID: "acme", UserName: "alice", ExternalID: "e1"}
	must(t, s.CreateUser(a))

	wantErr(t, s.CreateUser(&User{OrgID: "acme", UserName: "ALICE"}), ErrConflict)
	wantErr(t, s.CreateUser(&User{OrgID: "acme", UserName: "bob", ExternalID: "e1"}), ErrConflict)
	wantErr(t, s.CreateUser(&User{OrgID: "acme", ID: a.ID, UserName: "carol"}), ErrExists)
	// Same names in another org are fine; a differently-cased externalId is another one.
	must(t, s.CreateUser(&User{OrgID: "other", UserName: "alice", ExternalID: "e1"}))
	must(t, s.CreateUser(&User{OrgID: "acme", UserName: "erin", ExternalID: "E1"}))
	// Failed creates left no index entries behind.
	_, err := s.UserByUserName("acme", "bob")
	wantErr(t, err, ErrNotFound)
	if n, _ := s.CountUsers("acme"); n != 2 {
		t.Fatalf("CountUsers = %d, want 2", n)
	}
}

func TestConcurrentCreateSameUserNameOneWins(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "acme")
	var ok, conflict int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			err := s.CreateUser(&User{OrgID: "acme", UserName: fmt.Sprintf("Same%c", "eE"[i%2])})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, ErrConflict):
				conflict++
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ok != 1 || conflict != 9 {
		t.Fatalf("ok=%d conflict=%d", ok, conflict)
	}
	if n, _ := s.CountUsers("acme"); n != 1 {
		t.Fatalf("CountUsers = %d", n)
	}
}

func TestUserByEmailSharedAddressReturnsOldest(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "acme")
	old := &User{OrgID: "acme", UserName: "old", Emails: []Email{{Value: "shared@acme.com"}}, Created: time.Now().Add(-time.Hour)}
	must(t, s.CreateUser(old))
	young := mkUser(t, s, "acme", "young", "Shared@Acme.com")
	got, err := s.UserByEmail("acme", "shared@acme.com")
	must(t, err)
	if got.ID != old.ID {
		t.Fatalf("UserByEmail = %s, want the oldest %s", got.UserName, old.UserName)
	}
	// When the oldest drops the address, the other user is found.
	_, err = s.UpdateUser("acme", old.ID, func(u *User) error { u.Emails = nil; return nil })
	must(t, err)
	got, err = s.UserByEmail("acme", "SHARED@acme.com")
	must(t, err)
	if got.ID != young.ID {
		t.Fatalf("UserByEmail = %s, want young", got.UserName)
	}
}

func TestUpdateUserMaintainsIndexes(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "acme")
	u := mkUser(t, s, "acme", "alice", "alice@acme.com", "a@acme.com")
	b := mkUser(t, s, "acme", "bob", "bob@acme.com")
	must2 := func(_ *User, err error) { t.Helper(); must(t, err) }

	time.Sleep(time.Millisecond)
	up, err := s.UpdateUser("acme", u.ID, func(u *User) error {
		u.UserName = "Alice2"
		u.ExternalID = "x1"
		u.Emails = []Email{{Value: "a@acme.com"}, {Value: "new@acme.com"}}
		u.DisplayName = "Alice"
		return nil
	})
	must(t, err)
	if !up.Updated.After(u.Updated) || up.DisplayName != "Alice" || !up.Created.Equal(u.Created) {
		t.Fatalf("UpdateUser = %+v", up)
	}
	_, err = s.UserByUserName("acme", "alice")
	wantErr(t, err, ErrNotFound)
	must2(s.UserByUserName("acme", "alice2"))
	must2(s.UserByExternalID("acme", "x1"))
	_, err = s.UserByEmail("acme", "alice@acme.com")
	wantErr(t, err, ErrNotFound)
	must2(s.UserByEmail("acme", "a@acme.com"))
	must2(s.UserByEmail("acme", "new@acme.com"))

	// Case-only rename keeps its own index key.
	_, err = s.UpdateUser("acme", u.ID, func(u *User) error { u.UserName = "ALICE2"; return nil })
	must(t, err)

	// Conflicts abort the whole update.
	_, err = s.UpdateUser("acme", b.ID, func(u *User) error { u.UserName = "alice2"; u.DisplayName = "changed"; return nil })
	wantErr(t, err, ErrConflict)
	_, err = s.UpdateUser("acme", b.ID, func(u *User) error { u.ExternalID = "x1"; return nil })
	wantErr(t, err, ErrConflict)
	got, _ := s.GetUser("acme", b.ID)
	if got.DisplayName != "" || got.ExternalID != "" {
		t.Fatalf("conflicting update changed the user: %+v", got)
	}
	must2(s.UserByUserName("acme", "bob"))

	// Removing the externalId frees it.
	_, err = s.UpdateUser("acme", u.ID, func(u *User) error { u.ExternalID = ""; return nil })
	must(t, err)
	_, err = s.UserByExternalID("acme", "x1")
	wantErr(t, err, ErrNotFound)
	_, err = s.UpdateUser("acme", b.ID, func(u *User) error { u.ExternalID = "x1"; return nil })
	must(t, err)

	_, err = s.UpdateUser("acme", u.ID, func(u *User) error { u.ID = "other"; return nil })
	wantErr(t, err, ErrInvalid)
	_, err = s.UpdateUser("acme", u.ID, func(u *User) error { u.UserName = ""; return nil })
	wantErr(t, err, ErrInvalid)
	_, err = s.UpdateUser("acme", "missing", func(u *User) error { return nil })
	wantErr(t, err, ErrNotFound)
}

func TestDeleteUserCleansUp(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "acme")
	u := mkUser(t, s, "acme", "alice", "alice@acme.com")
	u.ExternalID = "" // (mkUser sets none)
	keep := mkUser(t, s, "acme", "bob")
	g := &Group{OrgID: "acme", DisplayName: "G", Members: []string{u.ID, keep.ID}}
	must(t, s.CreateGroup(g))
	for i := range 3 {
		must(t, s.CreateSession(&Session{ID: fmt.Sprint("s", i), OrgID: "acme", UserID: u.ID, ExpiresAt: time.Now().Add(time.Hour)}))
	}
	must(t, s.CreateSession(&Session{ID: "keep", OrgID: "acme", UserID: keep.ID, ExpiresAt: time.Now().Add(time.Hour)}))

	must(t, s.DeleteUser("acme", u.ID))
	wantErr(t, s.DeleteUser("acme", u.ID), ErrNotFound)

	_, err := s.GetUser("acme", u.ID)
	wantErr(t, err, ErrNotFound)
	_, err = s.UserByUserName("acme", "alice")
	wantErr(t, err, ErrNotFound)
	_, err = s.UserByEmail("acme", "alice@acme.com")
	wantErr(t, err, ErrNotFound)
	gg, _ := s.GetGroup("acme", g.ID)
	if !slices.Equal(gg.Members, []string{keep.ID}) {
		t.Fatalf("group members after delete = %v", gg.Members)
	}
	if ok, _ := s.IsMember("acme", g.ID, u.ID); ok {
		t.Fatal("membership index survived")
	}
	for i := range 3 {
		_, err := s.GetSession(fmt.Sprint("s", i))
		wantErr(t, err, ErrNotFound)
	}
	if _, err := s.GetSession("keep"); err != nil {
		t.Fatal("other user's session removed")
	}
	for _, p := range []string{"sessuser/acme/" + u.ID, "sessorg/acme/s", "gmem/acme/" + u.ID, "umail/acme/alice"} {
		if keys := rawKeys(t, s, p); len(keys) != 0 {
			t.Errorf("leftover keys %v", keys)
		}
	}
	if n, _ := s.CountUsers("acme"); n != 1 {
		t.Fatalf("CountUsers = %d", n)
	}
	// The userName is free again.
	mkUser(t, s, "acme", "ALICE")
}

func TestListUsersPagination(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "ab")
	mkOrg(t, s, "abc") // shares a prefix with "ab"
	var ids []string
	for i := range 25 {
		ids = append(ids, mkUser(t, s, "ab", fmt.Sprint("user", i)).ID)
	}
	mkUser(t, s, "abc", "intruder")
	slices.Sort(ids)

	var seen []string
	for off := 0; ; off += 10 {
		page, total, err := s.ListUsers("ab", off, 10)
		must(t, err)
		if total != 25 {
			t.Fatalf("total = %d", total)
		}
		if len(page) == 0 {
			break
		}
		for _, u := range page {
			seen = append(seen, u.ID)
		}
	}
	if !slices.Equal(seen, ids) {
		t.Fatalf("pages = %v\nwant %v", seen, ids)
	}
	all, total, err := s.ListUsers("ab", 0, -1)
	must(t, err)
	if len(all) != 25 || total != 25 {
		t.Fatalf("all = %d/%d", len(all), total)
	}
	none, total, err := s.ListUsers("ab", 0, 0)
	must(t, err)
	if len(none) != 0 || total != 25 {
		t.Fatalf("limit 0 = %d/%d", len(none), total)
	}
	past, _, _ := s.ListUsers("ab", 100, 10)
	if len(past) != 0 {
		t.Fatalf("offset past end = %d users", len(past))
	}
	neg, _, _ := s.ListUsers("ab", -5, 3)
	if len(neg) != 3 || neg[0].ID != ids[0] {
		t.Fatalf("negative offset = %v", neg)
	}
	if n, _ := s.CountUsers("abc"); n != 1 {
		t.Fatalf("CountUsers(abc) = %d", n)
	}
	if n, _ := s.CountUsers("nobody"); n != 0 {
		t.Fatalf("CountUsers(nobody) = %d", n)
	}
}

func TestBulkLoaderMatchesCreateUser(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "bulk")
	bulkLoadUsers(t, s, "bulk", 50, func(i int) string { return fmt.Sprint("User", i) })
	u, err := s.UserByUserName("bulk", "user7")
	must(t, err)
	if u2, err := s.UserByExternalID("bulk", "ext-User7"); err != nil || u2.ID != u.ID {
		t.Fatalf("UserByExternalID = %v, %v", u2, err)
	}
	if u3, err := s.UserByEmail("bulk", "USER7@example.com"); err != nil || u3.ID != u.ID {
		t.Fatalf("UserByEmail = %v, %v", u3, err)
	}
	if n, _ := s.CountUsers("bulk"); n != 50 {
		t.Fatalf("CountUsers = %d", n)
	}
	wantErr(t, s.CreateUser(&User{OrgID: "bulk", UserName: "USER7"}), ErrConflict)
}
