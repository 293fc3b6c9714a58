package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store/pgtest"
)

func putRequest(t *testing.T, s *Store, org, id string, ttl time.Duration) {
	t.Helper()
	must(t, s.PutAuthnRequest(&AuthnRequest{ID: id, OrgID: org, Binding: "b-" + id, ExpiresAt: time.Now().Add(ttl)}))
}

// A refused ConsumeSignIn writes nothing: neither the request nor the
// replay key changes when the other half fails.
func TestConsumeSignInIsAllOrNothing(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "acme")
	mkOrg(t, s, "globex")
	exp := time.Now().Add(time.Hour)
	putRequest(t, s, "acme", "req-1", time.Hour)
	must(t, s.ConsumeOnce("used", exp))

	// Replayed assertion: the request stays outstanding.
	_, err := s.ConsumeSignIn("acme", "req-1", "used", exp)
	wantErr(t, err, ErrReplayed)
	if _, err := s.PendingAuthnRequest("req-1"); err != nil {
		t.Fatalf("request consumed by a refused sign-in: %v", err)
	}
	// Unknown request, or another org's: the assertion is not recorded.
	for _, c := range []struct{ org, req string }{{"acme", "req-nope"}, {"globex", "req-1"}} {
		_, err = s.ConsumeSignIn(c.org, c.req, "fresh", exp)
		wantErr(t, err, ErrNotFound)
		if used, err := s.ReplayRecorded("fresh"); err != nil || used {
			t.Fatalf("%v: assertion recorded by a refused sign-in: %v %v", c, used, err)
		}
	}
	if _, err := s.PendingAuthnRequest("req-1"); err != nil {
		t.Fatalf("request consumed by another org's sign-in: %v", err)
	}

	// The admitted sign-in consumes both.
	r, err := s.ConsumeSignIn("acme", "req-1", "fresh", exp)
	if err != nil || r == nil || r.ID != "req-1" {
		t.Fatalf("ConsumeSignIn = %v, %v", r, err)
	}
	if _, err := s.PendingAuthnRequest("req-1"); err == nil {
		t.Error("request still outstanding after the sign-in")
	}
	if used, err := s.ReplayRecorded("fresh"); err != nil || !used {
		t.Errorf("assertion not recorded: %v %v", used, err)
	}
	_, err = s.ConsumeSignIn("acme", "req-1", "fresh-2", exp)
	wantErr(t, err, ErrNotFound)

	// IdP-initiated: no request, the replay key alone.
	if r, err := s.ConsumeSignIn("acme", "", "unsolicited", exp); err != nil || r != nil {
		t.Fatalf("IdP-initiated ConsumeSignIn = %v, %v", r, err)
	}
	_, err = s.ConsumeSignIn("acme", "", "unsolicited", exp)
	wantErr(t, err, ErrReplayed)

	_, err = s.ConsumeSignIn("acme", "", "", exp)
	wantErr(t, err, ErrInvalid)
	_, err = s.ConsumeSignIn("acme", "", "k", time.Time{})
	wantErr(t, err, ErrInvalid)
}

func TestConsumeSignInConcurrency(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "acme")
	for round := range 3 {
		id := fmt.Sprint("req-", round)
		putRequest(t, s, "acme", id, time.Hour)
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Go(func() {
				// Half replay the assertion, half answer the request with
				// another: exactly one of all of them gets through.
				k := fmt.Sprint("a-", round)
				if i%2 == 1 {
					k = fmt.Sprint("a-", round, "-", i)
				}
				if _, err := s.ConsumeSignIn("acme", id, k, time.Now().Add(time.Hour)); err == nil {
					wins.Add(1)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("round %d: %d sign-ins got through", round, wins.Load())
		}
	}
}

func TestPendingAuthnRequestAndSessionCount(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "acme")
	u := mkUser(t, s, "acme", "alice@acme.test")
	putRequest(t, s, "acme", "r1", time.Hour)
	if r, err := s.PendingAuthnRequest("r1"); err != nil || r.OrgID != "acme" {
		t.Fatalf("PendingAuthnRequest = %v, %v", r, err)
	}
	if _, err := s.PendingAuthnRequest("r1"); err != nil {
		t.Fatal("PendingAuthnRequest consumed the request")
	}
	_, err := s.PendingAuthnRequest("nope")
	wantErr(t, err, ErrNotFound)

	if n, err := s.CountOrgSessions("acme"); err != nil || n != 0 {
		t.Fatalf("CountOrgSessions = %d, %v", n, err)
	}
	must(t, s.CreateSession(&Session{ID: "s1", OrgID: "acme", UserID: u.ID, ExpiresAt: time.Now().Add(time.Hour)}))
	if n, err := s.CountOrgSessions("acme"); err != nil || n != 1 {
		t.Fatalf("CountOrgSessions = %d, %v", n, err)
	}
}

// onBackends runs test on a Store over Badger and over PostgreSQL (see
// pgtest for when the latter is skipped).
func onBackends(t *testing.T, test func(t *testing.T, s *Store)) {
	t.Run("badger", func(t *testing.T) { test(t, newTestStore(t)) })
	t.Run("postgres", func(t *testing.T) {
		s, err := OpenBackend(openTestPostgres(t), Options{GCInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		test(t, s)
	})
}

// dump is every key of the store with its value, to check that a refused
// write changed nothing at all.
func dump(t testing.TB, s *Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := s.view(func(txn Txn) error {
		for _, k := range keysWithPrefix(txn, []byte{}, nil, 0) {
			var v json.RawMessage
			if err := getJSON(txn, k, &v); err != nil {
				return err
			}
			out[string(k)] = string(v)
		}
		return nil
	})
	must(t, err)
	return out
}

// signInFixture is an org with a user, that user's session in the
// browser, and an outstanding request of that browser.
type signInFixture struct {
	s     *Store
	alice *User
}

func newSignInFixture(t *testing.T, s *Store) *signInFixture {
	mkOrg(t, s, "acme")
	mkOrg(t, s, "globex")
	alice := mkUser(t, s, "acme", "alice@acme.test", "alice@acme.test")
	must(t, s.CreateSession(&Session{ID: "s-old", OrgID: "acme", UserID: alice.ID, NameID: "alice", ExpiresAt: time.Now().Add(time.Hour)}))
	must(t, s.PutAuthnRequest(&AuthnRequest{ID: "req-1", OrgID: "acme", Binding: "b-1", ReturnTo: "/after", ExpiresAt: time.Now().Add(time.Hour)}))
	must(t, s.PutAuthnRequest(&AuthnRequest{ID: "req-g", OrgID: "globex", Binding: "b-g", ExpiresAt: time.Now().Add(time.Hour)}))
	return &signInFixture{s: s, alice: alice}
}

// signIn is an admitted sign-in of alice answering req-1 in the browser
// of s-old.
func (f *signInFixture) signIn(replayKey, sessionID string) *SignIn {
	return &SignIn{
		OrgID: "acme", RequestID: "req-1", ReplayKey: replayKey, ReplayUntil: time.Now().Add(time.Hour),
		UserID: f.alice.ID, UpdateUser: func(u *User) error {
			u.DisplayName = "Alice A."
			return nil
		},
		EndSession: "s-old",
		Session: &Session{ID: sessionID, OrgID: "acme", AuthMethod: "saml", NameID: "alice", SessionIndex: "idx-1",
			ExpiresAt: time.Now().Add(time.Hour)},
		Audit:   &AuditEvent{OrgID: "acme", Actor: "alice@acme.test", Action: "login.saml", Outcome: "success"},
		Attempt: &SignInAttempt{OrgID: "acme", Outcome: "success", Email: "alice@acme.test"},
	}
}

func TestCompleteSignInWritesEverything(t *testing.T) {
	onBackends(t, testCompleteSignInWritesEverything)
}

func testCompleteSignInWritesEverything(t *testing.T, s *Store) {
	f := newSignInFixture(t, s)
	done, err := s.CompleteSignIn(f.signIn("k-1", "s-new"))
	must(t, err)
	if done.Request == nil || done.Request.ID != "req-1" || done.Request.ReturnTo != "/after" {
		t.Errorf("request = %+v", done.Request)
	}
	if _, err := s.PendingAuthnRequest("req-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("request still outstanding: %v", err)
	}
	if used, err := s.ReplayRecorded("k-1"); err != nil || !used {
		t.Errorf("assertion not recorded: %v %v", used, err)
	}
	if u, err := s.GetUser("acme", f.alice.ID); err != nil || u.DisplayName != "Alice A." || done.User.DisplayName != "Alice A." {
		t.Errorf("user not updated: %+v %v; returned %+v", u, err, done.User)
	}
	if _, err := s.GetSession("s-old"); !errors.Is(err, ErrNotFound) {
		t.Errorf("previous session still there: %v", err)
	}
	sess, err := s.GetSession("s-new")
	if err != nil || sess.UserID != f.alice.ID || sess.SessionIndex != "idx-1" || done.Session.ID != "s-new" {
		t.Fatalf("new session = %+v, %v", sess, err)
	}
	events, err := s.ListAudit("acme", 10)
	must(t, err)
	if len(events) == 0 || events[0].Action != "login.saml" || events[0].ID != done.Audit.ID {
		t.Errorf("audit event not appended: %+v", events)
	}
	attempts, err := s.ListSignInAttempts("acme", done.Attempt.Ref)
	must(t, err)
	if len(attempts) != 1 || attempts[0].Outcome != "success" {
		t.Errorf("attempt not recorded: %+v", attempts)
	}
	// The SAML session index: the IdP's logout finds the new session.
	if n, err := s.DeleteSAMLSessions("acme", "alice", []string{"idx-1"}); err != nil || n != 1 {
		t.Errorf("DeleteSAMLSessions = %d, %v", n, err)
	}

	// A first sign-in creates the user, and the session is theirs;
	// IdP-initiated, it answers no request; no previous session.
	users, err := s.CountUsers("acme")
	must(t, err)
	si := &SignIn{OrgID: "acme", ReplayKey: "k-2", ReplayUntil: time.Now().Add(time.Hour),
		NewUser: &User{OrgID: "acme", UserName: "bob@acme.test", Active: true, Source: SourceSAML},
		Session: &Session{ID: "s-bob", OrgID: "acme", ExpiresAt: time.Now().Add(time.Hour)}}
	done, err = s.CompleteSignIn(si)
	must(t, err)
	if done.Request != nil || done.User.ID == "" || si.NewUser.ID != "" {
		t.Errorf("IdP-initiated first sign-in: %+v, user %+v, given user changed: %+v", done.Request, done.User, si.NewUser)
	}
	if u, err := s.UserByUserName("acme", "bob@acme.test"); err != nil || u.ID != done.User.ID {
		t.Errorf("new user = %+v, %v", u, err)
	}
	if sess, err := s.GetSession("s-bob"); err != nil || sess.UserID != done.User.ID {
		t.Errorf("new user's session = %+v, %v", sess, err)
	}
	if n, err := s.CountUsers("acme"); err != nil || n != users+1 {
		t.Errorf("CountUsers = %d, %v; want %d", n, err, users+1)
	}
}

// Every refusal of CompleteSignIn, by any of its parts, leaves every key
// of the store as it was: the request outstanding, the assertion
// unrecorded, the user, the previous session, the audit trail and the
// attempts unchanged.
func TestCompleteSignInRefusalChangesNothing(t *testing.T) {
	onBackends(t, testCompleteSignInRefusalChangesNothing)
}

func testCompleteSignInRefusalChangesNothing(t *testing.T, s *Store) {
	f := newSignInFixture(t, s)
	must(t, s.ConsumeOnce("used", time.Now().Add(time.Hour)))
	must(t, s.CreateSession(&Session{ID: "s-taken", OrgID: "acme", UserID: f.alice.ID, ExpiresAt: time.Now().Add(time.Hour)}))
	mkUser(t, s, "acme", "carol@acme.test")
	errFn := errors.New("update refused")
	newUser := func(si *SignIn, name string) {
		si.UserID, si.UpdateUser = "", nil
		si.NewUser = &User{OrgID: "acme", UserName: name, Active: true, Source: SourceSAML}
	}
	cases := []struct {
		name   string
		change func(si *SignIn)
		want   error
	}{
		{"replayed assertion", func(si *SignIn) { si.ReplayKey = "used" }, ErrReplayed},
		{"unknown request", func(si *SignIn) { si.RequestID = "req-nope" }, ErrAnswered},
		{"another org's request", func(si *SignIn) { si.RequestID = "req-g" }, ErrAnswered},
		{"new user over the byte cap", func(si *SignIn) {
			newUser(si, "dave@acme.test")
			si.UserOpts = []WriteOption{MaxStoredBytes(1)}
		}, ErrQuota},
		{"new user over max_users", func(si *SignIn) {
			newUser(si, "dave@acme.test")
			si.UserOpts = []WriteOption{MaxUsers(1)} // alice and carol are on file
		}, ErrUserLimit},
		{"new user whose userName is taken", func(si *SignIn) { newUser(si, "CAROL@acme.test") }, ErrMatched},
		{"update refused", func(si *SignIn) { si.UpdateUser = func(*User) error { return errFn } }, errFn},
		{"user gone", func(si *SignIn) { si.UserID = "no-such-user" }, ErrNotFound},
		{"session ID taken", func(si *SignIn) { si.Session.ID = "s-taken" }, ErrExists},
		{"session already expired", func(si *SignIn) { si.Session.ExpiresAt = time.Now().Add(-time.Second) }, ErrInvalid},
		{"session of another org", func(si *SignIn) { si.Session.OrgID = "globex" }, ErrInvalid},
		{"session of another user", func(si *SignIn) { si.Session.UserID = "someone-else" }, ErrInvalid},
		{"new user and update", func(si *SignIn) { si.NewUser = &User{OrgID: "acme", UserName: "x@acme.test"} }, ErrInvalid},
		{"no user", func(si *SignIn) { si.UserID = "" }, ErrInvalid},
		{"no replay key", func(si *SignIn) { si.ReplayKey = "" }, ErrInvalid},
		{"audit event of another org", func(si *SignIn) { si.Audit.OrgID = "globex" }, ErrInvalid},
		{"attempt of another org", func(si *SignIn) { si.Attempt.OrgID = "globex" }, ErrInvalid},
		{"org gone", func(si *SignIn) {
			si.OrgID, si.RequestID = "gone", ""
			si.Session.OrgID, si.Audit.OrgID, si.Attempt.OrgID = "gone", "gone", "gone"
		}, ErrNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			si := f.signIn("fresh", "s-new")
			c.change(si)
			before := dump(t, s)
			_, err := s.CompleteSignIn(si)
			wantErr(t, err, c.want)
			after := dump(t, s)
			if !maps.Equal(before, after) {
				for k, v := range after {
					if before[k] != v {
						t.Errorf("written: %s", k)
					}
				}
				for k := range before {
					if _, ok := after[k]; !ok {
						t.Errorf("deleted: %s", k)
					}
				}
			}
		})
	}
	// And the fixture still signs in, which dump sees.
	before := dump(t, s)
	if _, err := s.CompleteSignIn(f.signIn("fresh", "s-new")); err != nil {
		t.Fatal(err)
	}
	if after := dump(t, s); maps.Equal(before, after) || len(after) < 10 {
		t.Fatalf("dump misses the sign-in's writes (%d keys)", len(after))
	}
}

// Concurrent sign-ins: every one with its own request and assertion gets
// through, the same user's included (the store runs a transaction that
// lost a conflict again); of those racing with one assertion, or for one
// request, exactly one does. The attempts stay bounded.
func TestCompleteSignInConcurrency(t *testing.T) { onBackends(t, testCompleteSignInConcurrency) }

func testCompleteSignInConcurrency(t *testing.T, s *Store) {
	mkOrg(t, s, "acme")
	alice := mkUser(t, s, "acme", "alice@acme.test")
	const n = 48
	for i := range n {
		putRequest(t, s, "acme", fmt.Sprint("req-", i), time.Hour)
	}
	var wins, replays, answered atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			si := &SignIn{OrgID: "acme", RequestID: fmt.Sprint("req-", i), ReplayKey: fmt.Sprint("k-", i), ReplayUntil: time.Now().Add(time.Hour),
				Session: &Session{ID: fmt.Sprint("s-", i), OrgID: "acme", ExpiresAt: time.Now().Add(time.Hour)},
				Audit:   &AuditEvent{OrgID: "acme", Action: "login.saml", Outcome: "success"},
				Attempt: &SignInAttempt{OrgID: "acme", Outcome: "success"}}
			switch i % 4 {
			case 0, 1: // the same user, again and again
				si.UserID, si.UpdateUser = alice.ID, func(u *User) error { u.LastLogin = time.Now(); return nil }
			case 2: // first sign-ins of different users
				si.NewUser = &User{OrgID: "acme", UserName: fmt.Sprint("user-", i, "@acme.test"), Active: true, Source: SourceSAML}
			case 3: // a copy of sign-in i-1's assertion, for another request
				si.UserID, si.UpdateUser = alice.ID, func(*User) error { return nil }
				si.ReplayKey = fmt.Sprint("k-", i-1)
			}
			_, err := s.CompleteSignIn(si)
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, ErrReplayed):
				replays.Add(1)
			case errors.Is(err, ErrAnswered):
				answered.Add(1)
			default:
				t.Errorf("sign-in %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	// Each pair (i-1, i) with i%4 == 3 shares an assertion: one of the
	// two wins. Every other sign-in wins.
	if w, r := wins.Load(), replays.Load(); w != n-n/4 || r != n/4 || answered.Load() != 0 {
		t.Fatalf("%d admitted, %d replays, %d already answered; want %d, %d, 0", w, r, answered.Load(), n-n/4, n/4)
	}
	if got, err := s.CountOrgSessions("acme"); err != nil || got != n-n/4 {
		t.Errorf("%d sessions (%v), want %d", got, err, n-n/4)
	}

	// Many more: the attempts of sign-ins stay within the cap plus one
	// pruning interval, and the list shows the newest MaxSignInAttempts.
	for i := range MaxSignInAttempts + 2*signInPruneEvery {
		_, err := s.CompleteSignIn(&SignIn{OrgID: "acme", ReplayKey: fmt.Sprint("more-", i), ReplayUntil: time.Now().Add(time.Hour),
			UserID: alice.ID, UpdateUser: func(*User) error { return nil },
			Session: &Session{ID: fmt.Sprint("more-", i), OrgID: "acme", ExpiresAt: time.Now().Add(time.Hour)},
			Attempt: &SignInAttempt{OrgID: "acme", Outcome: "success"}})
		must(t, err)
	}
	if keys := rawKeys(t, s, pSignIn+"/acme/"); len(keys) > MaxSignInAttempts+signInPruneEvery {
		t.Errorf("%d attempts kept, more than %d + %d", len(keys), MaxSignInAttempts, signInPruneEvery)
	}
	if list, err := s.ListSignInAttempts("acme", ""); err != nil || len(list) != MaxSignInAttempts {
		t.Errorf("ListSignInAttempts: %d, %v", len(list), err)
	}
}

// First sign-ins racing for the last places under max_users: exactly as
// many as there are places get in, whatever the interleaving, and a
// refused one leaves no user behind.
func TestCompleteSignInUserLimit(t *testing.T) { onBackends(t, testCompleteSignInUserLimit) }

func testCompleteSignInUserLimit(t *testing.T, s *Store) {
	mkOrg(t, s, "acme")
	mkUser(t, s, "acme", "alice@acme.test")
	const n, places, max = 16, 3, 4 // alice holds one of max
	var wins, refused atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := s.CompleteSignIn(&SignIn{OrgID: "acme", ReplayKey: fmt.Sprint("k-", i), ReplayUntil: time.Now().Add(time.Hour),
				NewUser:  &User{OrgID: "acme", UserName: fmt.Sprint("user-", i, "@acme.test"), Active: true, Source: SourceSAML},
				UserOpts: []WriteOption{MaxUsers(max)},
				Session:  &Session{ID: fmt.Sprint("s-", i), OrgID: "acme", ExpiresAt: time.Now().Add(time.Hour)}})
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, ErrUserLimit):
				refused.Add(1)
			default:
				t.Errorf("sign-in %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != places || refused.Load() != n-places {
		t.Fatalf("%d admitted, %d refused at the limit; want %d, %d", wins.Load(), refused.Load(), places, n-places)
	}
	if got, err := s.CountUsers("acme"); err != nil || got != max {
		t.Fatalf("%d users (%v), want %d", got, err, max)
	}
	if users := rawKeys(t, s, pUser+"/acme/"); len(users) != max {
		t.Fatalf("%d user records, want %d", len(users), max)
	}
}

// BenchmarkSignInWrites compares the writes of one SAML sign-in as
// separate synced commits (consume, user update, previous session ended,
// session, audit event, attempt: the ACS before CompleteSignIn) with
// CompleteSignIn's one commit, one at a time and 16 at a time (different
// users), on a real Badger directory and on PostgreSQL. Badger syncs its
// log once per transaction even when it writes several together, so there
// the number of commits per sign-in is what counts; PostgreSQL flushes
// the log of concurrent commits together.
func BenchmarkSignInWrites(b *testing.B) {
	b.Run("badger", func(b *testing.B) { benchmarkSignInWrites(b, newTestStore(b)) })
	b.Run("postgres", func(b *testing.B) {
		dsn, schema := pgtest.Schema(b)
		s, err := OpenBackend(openPostgresAt(b, dsn, schema), Options{GCInterval: -1})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		benchmarkSignInWrites(b, s)
	})
}

func benchmarkSignInWrites(b *testing.B, s *Store) {
	mkOrg(b, s, "acme")
	const users = 64
	ids := make([]string, users)
	for i := range users {
		ids[i] = mkUser(b, s, "acme", fmt.Sprintf("user%02d@acme.test", i)).ID
	}
	var seq, lost, gaveUp atomic.Int64
	separate := func(n int64) error {
		id, uid := fmt.Sprint("r-", n), ids[n%users]
		if _, err := s.ConsumeSignIn("acme", id, "k-"+id, time.Now().Add(time.Hour)); err != nil {
			return err
		}
		if _, err := s.UpdateUser("acme", uid, func(u *User) error { u.LastLogin = time.Now(); return nil }); err != nil {
			return err
		}
		if err := s.CreateSession(&Session{ID: "s-" + fmt.Sprint(n), OrgID: "acme", UserID: uid, NameID: uid, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			return err
		}
		if err := s.AppendAudit(&AuditEvent{OrgID: "acme", Action: "login.saml", Outcome: "success"}); err != nil {
			return err
		}
		// The ACS logged a failure here and went on: attempts of one
		// org conflict with each other (every write prunes them).
		if err := s.AddSignInAttempt(&SignInAttempt{OrgID: "acme", Outcome: "success"}); err != nil {
			lost.Add(1)
		}
		return nil
	}
	one := func(n int64) error {
		id, uid := fmt.Sprint("r-", n), ids[n%users]
		_, err := s.CompleteSignIn(&SignIn{OrgID: "acme", RequestID: id, ReplayKey: "k-" + id, ReplayUntil: time.Now().Add(time.Hour),
			UserID: uid, UpdateUser: func(u *User) error { u.LastLogin = time.Now(); return nil },
			Session: &Session{ID: "s-" + fmt.Sprint(n), OrgID: "acme", NameID: uid, ExpiresAt: time.Now().Add(time.Hour)},
			Audit:   &AuditEvent{OrgID: "acme", Action: "login.saml", Outcome: "success"},
			Attempt: &SignInAttempt{OrgID: "acme", Outcome: "success"}})
		return err
	}
	// inParallel runs f for the next b.N numbers of seq, par at a time.
	inParallel := func(b *testing.B, par int, f func(int64) error) {
		end := seq.Load() + int64(b.N)
		var wg sync.WaitGroup
		for range par {
			wg.Go(func() {
				for n := seq.Add(1); n <= end; n = seq.Add(1) {
					err := f(n)
					if errors.Is(err, ErrTxnConflict) {
						// The store's retries ran out: a failed
						// sign-in, counted rather than fatal.
						gaveUp.Add(1)
					} else if err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		seq.Store(end)
	}
	for _, c := range []struct {
		name string
		f    func(int64) error
	}{{"separate-commits", separate}, {"one-commit", one}} {
		for _, par := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/in-flight=%d", c.name, par), func(b *testing.B) {
				// The requests are the login form's writes, not the
				// sign-in's: made before the timing.
				from := seq.Load()
				put := func(n int64) error {
					id := fmt.Sprint("r-", n)
					return s.PutAuthnRequest(&AuthnRequest{ID: id, OrgID: "acme", Binding: "b-" + id, ExpiresAt: time.Now().Add(time.Hour)})
				}
				// One at a time: on PostgreSQL, concurrent creations of
				// neighbouring keys fail serialization often enough to
				// exhaust the store's retries (reported; not what is
				// measured here).
				inParallel(b, 1, put)
				seq.Store(from)
				b.ResetTimer()
				lost.Store(0)
				gaveUp.Store(0)
				start, cpu := time.Now(), processCPU()
				inParallel(b, par, c.f)
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "signins/s")
				b.ReportMetric((processCPU()-cpu).Seconds()*1e3/float64(b.N), "cpu-ms/signin")
				b.ReportMetric(float64(lost.Load()), "attempts-lost")
				b.ReportMetric(float64(gaveUp.Load()), "failed")
			})
		}
	}
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
