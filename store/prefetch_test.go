package store

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestGetManySeesOwnWrites: a multi-key read answers as Gets would,
// inside a transaction that has written some of the keys (on PostgreSQL
// those writes are still queued when the read is sent).
func TestGetManySeesOwnWrites(t *testing.T) {
	s := newTestStore(t)
	must(t, s.update("test", func(txn Txn) error {
		for _, k := range []string{"t/a", "t/b", "t/c"} {
			if err := txn.Set([]byte(k), []byte("old "+k), 0); err != nil {
				return err
			}
		}
		return nil
	}))
	must(t, s.update("test", func(txn Txn) error {
		must(t, txn.Set([]byte("t/b"), []byte("new t/b"), 0))
		must(t, txn.Delete([]byte("t/c")))
		must(t, txn.Set([]byte("t/d"), []byte{}, 0))
		keys := [][]byte{[]byte("t/a"), []byte("t/b"), []byte("t/c"), []byte("t/d"), []byte("t/e"), []byte("t/a")}
		got, err := getMany(txn, keys)
		if err != nil {
			return err
		}
		want := []string{"old t/a", "new t/b", "<absent>", "", "<absent>", "old t/a"}
		for i, v := range got {
			s := "<absent>"
			if v != nil {
				s = string(v)
			}
			if s != want[i] {
				t.Errorf("%s = %q, want %q", keys[i], s, want[i])
			}
		}
		// The prefetched view answers the same, and follows later writes.
		p, err := prefetchSet(txn, readSet{keys: keys})
		if err != nil {
			return err
		}
		must(t, p.Delete([]byte("t/a")))
		must(t, p.Set([]byte("t/e"), []byte("e"), 0))
		if _, err := p.Get([]byte("t/a")); !errors.Is(err, ErrNoKey) {
			t.Errorf("deleted t/a: %v", err)
		}
		if v, err := p.Get([]byte("t/e")); err != nil || string(v) != "e" {
			t.Errorf("t/e = %q, %v", v, err)
		}
		if v, err := txn.Get([]byte("t/e")); err != nil || string(v) != "e" {
			t.Errorf("t/e through the transaction = %q, %v", v, err)
		}
		return nil
	}))
}

// TestProvisioningMatches finds users by each identifier from one
// snapshot, emails in request order and each user once.
func TestProvisioningMatches(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "acme")
	a := &User{OrgID: "acme", UserName: "Ann@acme.example", ExternalID: "ext-a", Emails: []Email{{Value: "shared@acme.example"}, {Value: "ann@acme.example"}}}
	b := &User{OrgID: "acme", UserName: "bob@acme.example", Emails: []Email{{Value: "SHARED@acme.example"}}}
	must(t, s.CreateUser(a))
	must(t, s.CreateUser(b))
	byExt, byName, byEmail, err := s.ProvisioningMatches("acme", "ext-a", "BOB@acme.example", []string{"ann@ACME.example", "shared@acme.example", "nobody@acme.example"})
	must(t, err)
	if byExt == nil || byExt.ID != a.ID || byName == nil || byName.ID != b.ID {
		t.Fatalf("byExternalID %+v, byUserName %+v", byExt, byName)
	}
	var got []string
	for _, u := range byEmail {
		got = append(got, u.UserName)
	}
	// ann@ finds Ann; shared@ finds Ann again (not repeated) and Bob.
	want := []string{a.UserName, b.UserName}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("byEmail = %v, want %v", got, want)
	}
	byExt, byName, byEmail, err = s.ProvisioningMatches("acme", "", "carol@acme.example", nil)
	must(t, err)
	if byExt != nil || byName != nil || len(byEmail) != 0 {
		t.Errorf("matches for nobody: %v %v %v", byExt, byName, byEmail)
	}
	_, _, _, err = s.ProvisioningMatches("acme", "x", "", nil)
	wantErr(t, err, ErrInvalid)
}

// TestProbe: values of keys and whether a prefix has keys, expired ones
// counting as absent, answered alike by both backends, in a single-read
// view.
func TestProbe(t *testing.T) {
	s := newTestStore(t)
	past := uint64(time.Now().Add(-time.Hour).Unix())
	must(t, s.update("test", func(txn Txn) error {
		for k, v := range map[string]string{"p/a": "1", "p/empty": "", "q/x/1": "q", "r/old/1": "gone"} {
			var exp uint64
			if k == "r/old/1" {
				exp = past
			}
			if err := txn.Set([]byte(k), []byte(v), exp); err != nil {
				return err
			}
		}
		return nil
	}))
	must(t, s.viewSingle(func(txn Txn) error {
		vals, found, err := probe(txn,
			[][]byte{[]byte("p/a"), []byte("p/none"), []byte("p/empty"), []byte("p/a")},
			[][]byte{[]byte("q/x/"), []byte("q/y/"), []byte("r/old/"), []byte("q/x/")})
		if err != nil {
			return err
		}
		var got []string
		for _, v := range vals {
			if v == nil {
				got = append(got, "<absent>")
			} else {
				got = append(got, string(v))
			}
		}
		if want := []string{"1", "<absent>", "", "1"}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("values %q, want %q", got, want)
		}
		if want := []bool{true, false, false, true}; fmt.Sprint(found) != fmt.Sprint(want) {
			t.Errorf("found %v, want %v", found, want)
		}
		return nil
	}))
}

// provisioningFixture is acme and other, each with a verified domain of
// its own, and acme's user ann (externalId externalID when not "").
func provisioningFixture(t *testing.T, externalID string) (*Store, *User) {
	t.Helper()
	s := newTestStore(t)
	mkOrg(t, s, "acme")
	mkOrg(t, s, "other")
	must(t, s.AddDomain(&Domain{OrgID: "other", Name: "other.example", Status: DomainVerified}))
	must(t, s.AddDomain(&Domain{OrgID: "acme", Name: "acme.example", Status: DomainVerified}))
	ann := &User{OrgID: "acme", UserName: "ann@acme.example", ExternalID: externalID, Emails: []Email{{Value: "ann@acme.example"}}}
	must(t, s.CreateUser(ann))
	return s, ann
}

// TestLookUpProvisioning: domain owners come with the matches, whether
// any user matches (a second, full read) or none does (one read).
func TestLookUpProvisioning(t *testing.T) {
	s, ann := provisioningFixture(t, "")
	domains := []string{"acme.example", "free.example", "other.example"}
	for _, c := range []struct {
		name, userName, email string
		want                  string
	}{
		{"none matches", "bob@acme.example", "bob@other.example", ""},
		{"userName matches", "ANN@acme.example", "", ann.ID},
		{"email matches", "carol@acme.example", "Ann@acme.example", ann.ID},
	} {
		t.Run(c.name, func(t *testing.T) {
			var emails []string
			if c.email != "" {
				emails = []string{c.email}
			}
			l, err := s.LookUpProvisioning("acme", domains, "", c.userName, emails)
			must(t, err)
			if want := []string{"acme", "", "other"}; fmt.Sprint(l.DomainOwners) != fmt.Sprint(want) {
				t.Errorf("owners %q, want %q", l.DomainOwners, want)
			}
			var got string
			switch {
			case l.ByUserName != nil:
				got = l.ByUserName.ID
			case len(l.ByEmail) == 1:
				got = l.ByEmail[0].ID
			case len(l.ByEmail) > 1:
				t.Fatalf("by email: %v", l.ByEmail)
			}
			if got != c.want || l.ByExternalID != nil {
				t.Errorf("matched %q (by externalId %v), want %q", got, l.ByExternalID, c.want)
			}
		})
	}
}

// TestCreateUnmatched: a creation with Unmatched refuses a foreign
// verified domain and names any match instead of creating, and creates
// when nothing matches; a prefetch's prefix answers follow its writes.
func TestCreateUnmatched(t *testing.T) {
	s, _ := provisioningFixture(t, "x-ann")
	for _, c := range []struct {
		name    string
		u       User
		domains []string
		wantErr error
	}{
		{"foreign domain", User{UserName: "bob@other.example"}, []string{"other.example"}, nil},
		{"userName held", User{UserName: "ANN@acme.example"}, []string{"acme.example"}, ErrMatched},
		{"externalId held", User{UserName: "carol@acme.example", ExternalID: "x-ann"}, nil, ErrMatched},
		{"address held", User{UserName: "dan@acme.example", Emails: []Email{{Value: "Ann@ACME.example"}}}, nil, ErrMatched},
	} {
		t.Run(c.name, func(t *testing.T) {
			u := c.u
			u.OrgID = "acme"
			err := s.CreateUser(&u, Unmatched(c.domains))
			var owned *DomainOwnedError
			switch {
			case c.wantErr != nil:
				wantErr(t, err, c.wantErr)
			case !errors.As(err, &owned) || owned.Domain != "other.example" || owned.Owner != "other":
				t.Fatalf("err = %v, want the domain owned by other", err)
			}
			if n, err := s.CountUsers("acme"); err != nil || n != 1 {
				t.Fatalf("CountUsers = %d, %v: a refused creation wrote", n, err)
			}
		})
	}
	eve := &User{OrgID: "acme", UserName: "eve@acme.example", ExternalID: "x-eve", Emails: []Email{{Value: "eve@acme.example"}}}
	must(t, s.CreateUser(eve, Unmatched([]string{"acme.example"}), MaxStoredBytes(1<<20)))
	if got, err := s.UserByEmail("acme", "eve@acme.example"); err != nil || got.ID != eve.ID {
		t.Fatalf("UserByEmail = %v, %v", got, err)
	}

	// Within one transaction, what a prefetch found under a prefix
	// follows the transaction's writes.
	rollBack := errors.New("roll back")
	err := s.update("test", func(txn Txn) error {
		pre := scanPrefix(pUMail, "acme", "new@acme.example")
		p, err := prefetchSet(txn, readSet{prefixes: [][]byte{pre}})
		if err != nil {
			return err
		}
		if f, err := prefixFound(p, pre); err != nil || f {
			return fmt.Errorf("before the write: found %v, %v", f, err)
		}
		k := key(pUMail, "acme", "new@acme.example", "some-id")
		if err := p.Set(k, []byte(`"some-id"`), 0); err != nil {
			return err
		}
		if f, err := prefixFound(p, pre); err != nil || !f {
			return fmt.Errorf("after the set: found %v, %v", f, err)
		}
		if err := p.Delete(k); err != nil {
			return err
		}
		if f, err := prefixFound(p, pre); err != nil || f {
			return fmt.Errorf("after the delete: found %v, %v", f, err)
		}
		return rollBack
	})
	if !errors.Is(err, rollBack) {
		t.Fatal(err)
	}
}
