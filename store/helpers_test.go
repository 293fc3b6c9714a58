package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ssogate/ssogate/store/pgtest"
)

// The suite runs twice: on Badger, then (TestMain re-runs the test
// binary with suiteBackendEnv=postgres) on PostgreSQL, so that every
// invariant these tests hold is held by both backends.
const suiteBackendEnv = "SSOGATE_STORE_SUITE_BACKEND"

func suiteOnPostgres() bool { return os.Getenv(suiteBackendEnv) == "postgres" }

// openTestStore opens a fresh store on the suite's backend and returns it
// with its location, for reopenStore.
func openTestStore(t testing.TB) (*Store, string) {
	t.Helper()
	loc := t.TempDir()
	if suiteOnPostgres() {
		dsn, schema := pgtest.Schema(t)
		loc = dsn + "\x00" + schema
	}
	s, err := reopenStore(loc, Options{GCInterval: -1})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s, loc
}

// reopenStore opens the store at loc (from openTestStore) again.
func reopenStore(loc string, opts Options) (*Store, error) {
	dsn, schema, ok := strings.Cut(loc, "\x00")
	if !ok {
		return Open(loc, opts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := OpenPostgres(ctx, PostgresOptions{DSN: dsn, Schema: schema, Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	return OpenBackend(b, opts)
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
	err := s.view(func(txn Txn) error {
		p := []byte(prefix)
		it := txn.Iterator(IterOptions{Prefix: p, KeysOnly: true})
		defer it.Close()
		for it.Seek(p); it.Valid(); it.Next() {
			keys = append(keys, string(it.Key()))
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
	wb := newBulk(t, s)
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
	must(t, s.update("bulk count", func(txn Txn) error { return addCounter(txn, key(pCount, "users", org), n) }))
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

// rawUpdate writes straight to the backend, past the Store's own code, to
// build states (old formats, damage) the API cannot produce.
func rawUpdate(s *Store, fn func(txn Txn) error) error { return s.b.Update(fn, nil) }

// bulk writes many keys straight to the backend in transactions of a
// few hundred, to make large fixtures affordable.
type bulk struct {
	t       testing.TB
	s       *Store
	pending []bulkEntry
}

type bulkEntry struct {
	k, v      []byte
	expiresAt uint64
}

func newBulk(t testing.TB, s *Store) *bulk { return &bulk{t: t, s: s} }

func (b *bulk) Set(k, v []byte) error { return b.SetExpiring(k, v, 0) }

func (b *bulk) SetExpiring(k, v []byte, expiresAt uint64) error {
	b.pending = append(b.pending, bulkEntry{bytes.Clone(k), bytes.Clone(v), expiresAt})
	if len(b.pending) >= 500 {
		return b.Flush()
	}
	return nil
}

func (b *bulk) Flush() error {
	if len(b.pending) == 0 {
		return nil
	}
	err := rawUpdate(b.s, func(txn Txn) error {
		for _, e := range b.pending {
			if err := txn.Set(e.k, e.v, e.expiresAt); err != nil {
				return err
			}
		}
		return nil
	})
	b.pending = b.pending[:0]
	return err
}

func (b *bulk) Cancel() {}
