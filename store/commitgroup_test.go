package store

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store/pgtest"
)

// TestCommitGroupSharesTransaction holds a group's leader inside its
// transaction until more writes have queued behind it, then checks that
// those ran together: one more write transaction, not one each.
func TestCommitGroupSharesTransaction(t *testing.T) {
	var txns atomic.Int64
	loc := t.TempDir()
	if suiteOnPostgres() {
		dsn, schema := pgtest.Schema(t)
		loc = dsn + "\x00" + schema
	}
	s, err := reopenStore(loc, Options{GCInterval: -1, ObserveWrite: func(string, time.Duration) { txns.Add(1) }})
	must(t, err)
	t.Cleanup(func() { _ = s.Close() })
	const followers = 10
	before := txns.Load()
	release := make(chan struct{})
	started := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		must(t, s.updateGrouped("test", "g", readSet{}, func(txn Txn) error {
			close(started)
			<-release
			return txn.Set([]byte("k/leader"), []byte("1"), 0)
		}))
	})
	<-started
	for i := range followers {
		wg.Go(func() {
			if err := s.updateGrouped("test", "g", readSet{}, func(txn Txn) error {
				return txn.Set(fmt.Appendf(nil, "k/%d", i), []byte("1"), 0)
			}); err != nil {
				t.Error(err)
			}
		})
	}
	waitQueued(t, s, "g", followers)
	close(release)
	wg.Wait()
	if got := txns.Load() - before; got != 2 {
		t.Errorf("%d write transactions for 1 + %d grouped writes, want 2", got, followers)
	}
	if keys := rawKeys(t, s, "k/"); len(keys) != followers+1 {
		t.Errorf("keys written: %q", keys)
	}
	s.groups.mu.Lock()
	defer s.groups.mu.Unlock()
	if len(s.groups.m) != 0 {
		t.Errorf("idle queues left behind: %v", s.groups.m)
	}
}

// TestCommitGroupFailureIsolated: a write that fails in a group fails
// alone, with its own error and nothing of it kept; the others of its
// group are kept.
func TestCommitGroupFailureIsolated(t *testing.T) {
	s := newTestStore(t)
	errBad := errors.New("bad write")
	release := make(chan struct{})
	started := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		must(t, s.updateGrouped("test", "g", readSet{}, func(txn Txn) error {
			select {
			case <-started:
			default:
				close(started)
				<-release
			}
			return txn.Set([]byte("k/leader"), []byte("1"), 0)
		}))
	})
	<-started
	errs := make([]error, 6)
	for i := range errs {
		wg.Go(func() {
			errs[i] = s.updateGrouped("test", "g", readSet{}, func(txn Txn) error {
				// Written before failing: must not be kept.
				if err := txn.Set(fmt.Appendf(nil, "k/%d", i), []byte("1"), 0); err != nil {
					return err
				}
				if i == 3 {
					return errBad
				}
				return nil
			})
		})
	}
	waitQueued(t, s, "g", len(errs))
	close(release)
	wg.Wait()
	for i, err := range errs {
		if want := error(nil); i == 3 {
			wantErr(t, err, errBad)
		} else if err != want {
			t.Errorf("write %d: %v", i, err)
		}
	}
	want := []string{"k/0", "k/1", "k/2", "k/4", "k/5", "k/leader"}
	if keys := rawKeys(t, s, "k/"); fmt.Sprint(keys) != fmt.Sprint(want) {
		t.Errorf("keys written: %q, want %q", keys, want)
	}
}

// waitQueued waits until n writes queue in group behind its leader.
func waitQueued(t *testing.T, s *Store, group string, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		s.groups.mu.Lock()
		q := s.groups.m[group]
		queued := 0
		if q != nil {
			queued = len(q.pending)
		}
		s.groups.mu.Unlock()
		if queued == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", queued, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestConcurrentCreatesHeldToMaxUsers: concurrent creations, grouped or
// not, never take an organization past MaxUsers, and each refused one
// gets ErrUserLimit and leaves nothing behind.
func TestConcurrentCreatesHeldToMaxUsers(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "acme")
	const max, tries = 20, 60
	var ok, refused atomic.Int64
	var wg sync.WaitGroup
	for i := range tries {
		wg.Go(func() {
			err := s.CreateUser(&User{OrgID: "acme", UserName: fmt.Sprintf("u%d@acme.example", i), ExternalID: fmt.Sprint(i)}, MaxUsers(max))
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ErrUserLimit):
				refused.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != max || refused.Load() != tries-max {
		t.Fatalf("%d created, %d refused; want %d, %d", ok.Load(), refused.Load(), max, tries-max)
	}
	if n, err := s.CountUsers("acme"); err != nil || n != max {
		t.Fatalf("CountUsers = %d, %v", n, err)
	}
	for _, p := range []string{"user/acme/", "uname/acme/", "uext/acme/"} {
		if keys := rawKeys(t, s, p); len(keys) != max {
			t.Errorf("%d keys under %s, want %d", len(keys), p, max)
		}
	}
	err := s.CreateUser(&User{OrgID: "acme", UserName: "one-more@acme.example"}, MaxUsers(max))
	wantErr(t, err, ErrUserLimit)
	must(t, s.CreateUser(&User{OrgID: "acme", UserName: "one-more@acme.example"}, MaxUsers(max+1)))
}

// TestCreateUserAudited: the audit event is written with the user, and
// not at all when the creation is refused.
func TestCreateUserAudited(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "acme")
	ev := &AuditEvent{OrgID: "acme", Actor: "scim", Action: "scim.user.create", Outcome: "success", Details: map[string]string{"userName": "a@acme.example"}}
	u := &User{OrgID: "acme", UserName: "a@acme.example"}
	must(t, s.CreateUser(u, Audited(ev)))
	if ev.ID == "" || ev.Time.IsZero() {
		t.Errorf("event not completed: %+v", ev)
	}
	dup := &AuditEvent{OrgID: "acme", Actor: "scim", Action: "scim.user.create", Outcome: "success"}
	wantErr(t, s.CreateUser(&User{OrgID: "acme", UserName: "A@acme.example"}, Audited(dup)), ErrConflict)
	bad := &AuditEvent{OrgID: "acme"} // no action
	wantErr(t, s.CreateUser(&User{OrgID: "acme", UserName: "b@acme.example"}, Audited(bad)), ErrInvalid)
	if _, err := s.UserByUserName("acme", "b@acme.example"); !errors.Is(err, ErrNotFound) {
		t.Errorf("user of a refused event: %v", err)
	}
	events, err := s.ListAudit("acme", 0)
	must(t, err)
	if len(events) != 1 || events[0].ID != ev.ID || events[0].Details["userName"] != "a@acme.example" {
		t.Fatalf("trail: %+v", events)
	}
}

// TestCommitGroupPanicFailsItsWrites: a write that panics fails its
// group's writes instead of leaving them, and every later write of the
// group, waiting forever.
func TestCommitGroupPanicFailsItsWrites(t *testing.T) {
	s := newTestStore(t)
	release := make(chan struct{})
	started := make(chan struct{})
	var wg sync.WaitGroup
	var leaderErr error
	wg.Go(func() {
		leaderErr = s.updateGrouped("test", "g", readSet{}, func(txn Txn) error {
			select {
			case <-started:
			default:
				close(started)
				<-release
			}
			return txn.Set([]byte("k/leader"), []byte("1"), 0)
		})
	})
	<-started
	var panicErr error
	wg.Go(func() {
		panicErr = s.updateGrouped("test", "g", readSet{}, func(Txn) error { panic("boom") })
	})
	waitQueued(t, s, "g", 1)
	close(release)
	wg.Wait()
	if panicErr == nil {
		t.Error("the panicking write succeeded")
	}
	// The leader's group was only itself (the other write queued after
	// it took the lead): it is kept.
	if leaderErr != nil {
		t.Errorf("leader: %v", leaderErr)
	}
	// And the group is usable again.
	must(t, s.updateGrouped("test", "g", readSet{}, func(txn Txn) error {
		return txn.Set([]byte("k/after"), []byte("1"), 0)
	}))
	if keys := rawKeys(t, s, "k/after"); len(keys) != 1 {
		t.Errorf("write after the panic: %q", keys)
	}
}
