package store

import (
	"errors"
	"fmt"
	"testing"
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
		p, err := prefetch(txn, keys...)
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
