package store

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"
)

func openTestStore(t testing.TB) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(dir, Options{GCInterval: -1})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s, dir
}

func newTestStore(t testing.TB) *Store {
	s, _ := openTestStore(t)
	return s
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want %v", err, target)
	}
}

func mkOrg(t testing.TB, s *Store, id string) *Org {
	t.Helper()
	o := &Org{ID: id, Name: "Org " + id}
	must(t, s.CreateOrg(o))
	return o
}

func mkUser(t testing.TB, s *Store, org, userName string, emails ...string) *User {
	t.Helper()
	u := &User{OrgID: org, UserName: userName, Active: true, Source: SourceSCIM}
	for _, e := range emails {
		u.Emails = append(u.Emails, Email{Value: e})
	}
	must(t, s.CreateUser(u))
	return u
}

// rawKeys lists every key in the database with the given prefix, straight
// from Badger, to check what the public API leaves behind.
func rawKeys(t testing.TB, s *Store, prefix string) []string {
	t.Helper()
	var keys []string
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = []byte(prefix)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			keys = append(keys, string(it.Item().Key()))
		}
		return nil
	})
	must(t, err)
	return keys
}

// bulkLoadUsers writes n users of org with Badger's WriteBatch, through the
// same index builder CreateUser uses. It exists only to make 100k-user
// benchmarks affordable; TestBulkLoader checks it matches CreateUser.
func bulkLoadUsers(t testing.TB, s *Store, org string, n int, name func(i int) string) {
	t.Helper()
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	created := now()
	set := func(k []byte, v any) {
		b, err := jsonMarshal(v)
		must(t, err)
		must(t, wb.Set(k, b))
	}
	for i := range n {
		u := &User{
			ID: newUUID(), OrgID: org, UserName: name(i), ExternalID: "ext-" + name(i),
			Emails: []Email{{Value: name(i) + "@example.com", Primary: true}},
			Active: true, Source: SourceSCIM, Created: created, Updated: created,
		}
		for _, ix := range userIndexes(u) {
			set(ix.key, u.ID)
		}
		set(key(pUser, org, u.ID), u)
	}
	must(t, wb.Flush())
	must(t, s.update("bulk count", func(txn *badger.Txn) error { return addCounter(txn, key(pCount, "users", org), n) }))
}

// waitUntil polls cond (TTL tests) for up to d.
func waitUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cond()
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

func newUUID() string { return uuid.NewString() }
