package store

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func sessionFixture(t *testing.T) (*Store, *User) {
	s := newTestStore(t)
	mkOrg(t, s, "acme")
	return s, mkUser(t, s, "acme", "alice")
}

func TestSessionLifecycle(t *testing.T) {
	s, u := sessionFixture(t)
	exp := time.Now().Add(time.Hour)

	wantErr(t, s.CreateSession(&Session{OrgID: "acme", UserID: u.ID, ExpiresAt: exp}), ErrInvalid)
	wantErr(t, s.CreateSession(&Session{ID: "s", OrgID: "acme", UserID: u.ID}), ErrInvalid)
	wantErr(t, s.CreateSession(&Session{ID: "s", OrgID: "acme", UserID: u.ID, ExpiresAt: time.Now().Add(-time.Second)}), ErrInvalid)
	wantErr(t, s.CreateSession(&Session{ID: "s", OrgID: "acme", UserID: "nobody", ExpiresAt: exp}), ErrNotFound)
	wantErr(t, s.CreateSession(&Session{ID: "s", OrgID: "ghost", UserID: u.ID, ExpiresAt: exp}), ErrNotFound)

	sess := &Session{ID: "h/1", OrgID: "acme", UserID: u.ID, AuthMethod: "saml", Groups: []string{"g1"}, NameID: "alice", ExpiresAt: exp}
	must(t, s.CreateSession(sess))
	if sess.Created.IsZero() || !sess.LastSeen.Equal(sess.Created) {
		t.Fatalf("defaults: %+v", sess)
	}
	wantErr(t, s.CreateSession(&Session{ID: "h/1", OrgID: "acme", UserID: u.ID, ExpiresAt: exp}), ErrExists)

	got, err := s.GetSession("h/1")
	must(t, err)
	if got.UserID != u.ID || got.AuthMethod != "saml" || !slices.Equal(got.Groups, []string{"g1"}) {
		t.Fatalf("GetSession = %+v", got)
	}
	got.Groups[0] = "mutated"
	if again, _ := s.GetSession("h/1"); again.Groups[0] != "g1" {
		t.Fatal("GetSession returned shared state")
	}
	_, err = s.GetSession("nope")
	wantErr(t, err, ErrNotFound)

	// Touch: visible at once, only forwards, written by the flusher.
	t1 := time.Now().Add(time.Minute).UTC().Round(0)
	must(t, s.TouchSession("h/1", t1))
	must(t, s.TouchSession("h/1", t1.Add(-30*time.Second)))
	if got, _ := s.GetSession("h/1"); !got.LastSeen.Equal(t1) {
		t.Fatalf("LastSeen = %v, want %v", got.LastSeen, t1)
	}
	s.flushTouches()
	var stored Session
	must(t, s.view(func(txn Txn) error { return getJSON(txn, key(pSess, "h/1"), &stored) }))
	if !stored.LastSeen.Equal(t1) {
		t.Fatalf("stored LastSeen = %v, want %v", stored.LastSeen, t1)
	}
	// The rewritten record keeps its TTL.
	must(t, s.view(func(txn Txn) error {
		at, err := txn.(expiryTxn).ExpiresAt(key(pSess, "h/1"))
		if err == nil && at != ttlSeconds(exp) {
			t.Errorf("TTL after touch = %d, want %d", at, ttlSeconds(exp))
		}
		return err
	}))
	// Touching an unknown session is harmless.
	must(t, s.TouchSession("ghost", time.Now()))
	s.flushTouches()
	if _, err := s.GetSession("ghost"); !errors.Is(err, ErrNotFound) {
		t.Fatal("a touch created a session")
	}

	must(t, s.DeleteSession("h/1"))
	wantErr(t, s.DeleteSession("h/1"), ErrNotFound)
	_, err = s.GetSession("h/1")
	wantErr(t, err, ErrNotFound)
	if keys := rawKeys(t, s, "sess"); len(keys) != 0 {
		t.Fatalf("leftover session keys %v", keys)
	}
}

func TestTouchDoesNotResurrectDeletedSession(t *testing.T) {
	s, u := sessionFixture(t)
	must(t, s.CreateSession(&Session{ID: "s", OrgID: "acme", UserID: u.ID, ExpiresAt: time.Now().Add(time.Hour)}))
	must(t, s.TouchSession("s", time.Now()))
	must(t, s.DeleteSession("s"))
	s.flushTouches()
	_, err := s.GetSession("s")
	wantErr(t, err, ErrNotFound)
}

func TestDeleteUserAndOrgSessions(t *testing.T) {
	s, alice := sessionFixture(t)
	bob := mkUser(t, s, "acme", "bob")
	mkOrg(t, s, "other")
	eve := mkUser(t, s, "other", "eve")
	exp := time.Now().Add(time.Hour)
	mk := func(id, org, user, method string) {
		must(t, s.CreateSession(&Session{ID: id, OrgID: org, UserID: user, AuthMethod: method, ExpiresAt: exp}))
	}
	mk("a1", "acme", alice.ID, "saml")
	mk("a2", "acme", alice.ID, "password")
	mk("b1", "acme", bob.ID, "saml")
	mk("b2", "acme", bob.ID, "backup")
	mk("e1", "other", eve.ID, "saml")

	n, err := s.DeleteUserSessions("acme", alice.ID)
	must(t, err)
	if n != 2 {
		t.Fatalf("DeleteUserSessions = %d", n)
	}
	if n, _ := s.DeleteUserSessions("other", alice.ID); n != 0 {
		t.Fatalf("DeleteUserSessions across orgs = %d", n)
	}
	n, err = s.DeleteOrgSessions("acme", "saml")
	must(t, err)
	if n != 1 {
		t.Fatalf("DeleteOrgSessions(saml) = %d", n)
	}
	if _, err := s.GetSession("b2"); err != nil {
		t.Fatal("backup session removed by saml-only deletion")
	}
	n, err = s.DeleteOrgSessions("acme", "")
	must(t, err)
	if n != 1 {
		t.Fatalf("DeleteOrgSessions(all) = %d", n)
	}
	for _, id := range []string{"a1", "a2", "b1", "b2"} {
		_, err := s.GetSession(id)
		wantErr(t, err, ErrNotFound)
	}
	if _, err := s.GetSession("e1"); err != nil {
		t.Fatal("other org's session removed")
	}
	for _, p := range []string{"sessorg/acme/", "sessuser/acme/"} {
		if keys := rawKeys(t, s, p); len(keys) != 0 {
			t.Fatalf("leftover %v", keys)
		}
	}
}

func TestDeleteOrgSessionsManyInBatches(t *testing.T) {
	s, u := sessionFixture(t)
	exp := time.Now().Add(time.Hour)
	// Interleave methods so that batches contain sessions they must skip.
	const n = purgeBatch + 300
	wb := newBulk(t, s)
	for i := range n {
		method := "saml"
		if i%2 == 1 {
			method = "password"
		}
		id := fmt.Sprintf("s%06d", i)
		sess := &Session{ID: id, OrgID: "acme", UserID: u.ID, AuthMethod: method, ExpiresAt: exp}
		for k, v := range map[string]any{string(key(pSess, id)): sess, string(key(pSessOrg, "acme", id)): sessRef{u.ID, method}, string(key(pSessUser, "acme", u.ID, id)): true} {
			b, _ := jsonMarshal(v)
			must(t, wb.Set([]byte(k), b))
		}
	}
	must(t, wb.Flush())
	got, err := s.DeleteOrgSessions("acme", "password")
	must(t, err)
	if got != n/2 {
		t.Fatalf("deleted %d, want %d", got, n/2)
	}
	if left := rawKeys(t, s, "sess/"); len(left) != n-n/2 {
		t.Fatalf("%d sessions left, want %d", len(left), n-n/2)
	}
}

func TestSessionAndAuthnTTLExpiry(t *testing.T) {
	t.Parallel()
	s, u := sessionFixture(t)
	exp := time.Now().Add(time.Second)
	must(t, s.CreateSession(&Session{ID: "short", OrgID: "acme", UserID: u.ID, ExpiresAt: exp}))
	must(t, s.CreateSession(&Session{ID: "long", OrgID: "acme", UserID: u.ID, ExpiresAt: time.Now().Add(time.Hour)}))
	must(t, s.PutAuthnRequest(&AuthnRequest{ID: "r-short", OrgID: "acme", Binding: "b", ExpiresAt: exp}))
	must(t, s.PutAuthnRequest(&AuthnRequest{ID: "r-long", OrgID: "acme", Binding: "b", ExpiresAt: time.Now().Add(time.Hour)}))
	if _, err := s.GetSession("short"); err != nil {
		t.Fatal(err)
	}

	// The store's own ExpiresAt check takes effect at once...
	time.Sleep(time.Until(exp) + 10*time.Millisecond)
	_, err := s.GetSession("short")
	wantErr(t, err, ErrNotFound)
	rs, err := s.AuthnRequestsForBinding("b")
	must(t, err)
	if len(rs) != 1 || rs[0].ID != "r-long" {
		t.Fatalf("AuthnRequestsForBinding = %v", rs)
	}
	// ...and Badger's TTL drops the records and their index keys.
	gone := waitUntil(3*time.Second, func() bool {
		return len(rawKeys(t, s, "sess/short")) == 0 && len(rawKeys(t, s, "sessuser/acme/"+u.ID+"/short")) == 0 &&
			len(rawKeys(t, s, "authn/r-short")) == 0 && len(rawKeys(t, s, "authnb/b/r-short")) == 0
	})
	if !gone {
		t.Fatal("Badger TTL did not expire the records")
	}
	if _, err := s.GetSession("long"); err != nil {
		t.Fatal(err)
	}
	// Deleting the user finds no expired session to count.
	if n, _ := s.DeleteUserSessions("acme", u.ID); n != 1 {
		t.Fatalf("DeleteUserSessions = %d, want 1", n)
	}
	_, err = s.ConsumeAuthnRequest("r-short")
	wantErr(t, err, ErrNotFound)
}

func TestAuthnRequests(t *testing.T) {
	s, _ := sessionFixture(t)
	exp := time.Now().Add(time.Hour)
	wantErr(t, s.PutAuthnRequest(&AuthnRequest{ID: "r", OrgID: "acme", ExpiresAt: exp}), ErrInvalid)
	wantErr(t, s.PutAuthnRequest(&AuthnRequest{ID: "r", OrgID: "ghost", Binding: "b", ExpiresAt: exp}), ErrNotFound)
	wantErr(t, s.PutAuthnRequest(&AuthnRequest{ID: "r", OrgID: "acme", Binding: "b"}), ErrInvalid)

	r1 := &AuthnRequest{ID: "id-1", OrgID: "acme", Binding: "bind/1", ReturnTo: "/app", ExpiresAt: exp}
	must(t, s.PutAuthnRequest(r1))
	wantErr(t, s.PutAuthnRequest(&AuthnRequest{ID: "id-1", OrgID: "acme", Binding: "x", ExpiresAt: exp}), ErrExists)
	time.Sleep(time.Millisecond)
	must(t, s.PutAuthnRequest(&AuthnRequest{ID: "id-0", OrgID: "acme", Binding: "bind/1", ExpiresAt: exp}))
	must(t, s.PutAuthnRequest(&AuthnRequest{ID: "id-2", OrgID: "acme", Binding: "bind/10", ExpiresAt: exp}))

	rs, err := s.AuthnRequestsForBinding("bind/1")
	must(t, err)
	if len(rs) != 2 || rs[0].ID != "id-1" || rs[1].ID != "id-0" {
		t.Fatalf("AuthnRequestsForBinding = %+v (want id-1 then id-0, oldest first)", rs)
	}
	if rs, _ := s.AuthnRequestsForBinding("bind"); len(rs) != 0 {
		t.Fatalf("binding prefix leaked: %v", rs)
	}

	got, err := s.ConsumeAuthnRequest("id-1")
	must(t, err)
	if got.ReturnTo != "/app" || got.OrgID != "acme" {
		t.Fatalf("ConsumeAuthnRequest = %+v", got)
	}
	_, err = s.ConsumeAuthnRequest("id-1")
	wantErr(t, err, ErrNotFound)
	if rs, _ := s.AuthnRequestsForBinding("bind/1"); len(rs) != 1 {
		t.Fatalf("consumed request still listed: %v", rs)
	}
}

func TestConsumeAuthnRequestConcurrentlyOnce(t *testing.T) {
	s, _ := sessionFixture(t)
	must(t, s.PutAuthnRequest(&AuthnRequest{ID: "once", OrgID: "acme", Binding: "b", ExpiresAt: time.Now().Add(time.Hour)}))
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			_, err := s.ConsumeAuthnRequest("once")
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, ErrNotFound):
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d consumers got the request", wins.Load())
	}
}

func TestConsumeOnceConcurrency(t *testing.T) {
	s := newTestStore(t)
	for round := range 5 {
		k := fmt.Sprint("assertion-", round)
		var wins, replays atomic.Int32
		var wg sync.WaitGroup
		for range 32 {
			wg.Go(func() {
				err := s.ConsumeOnce(k, time.Now().Add(time.Hour))
				switch {
				case err == nil:
					wins.Add(1)
				case errors.Is(err, ErrReplayed):
					replays.Add(1)
				default:
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 || replays.Load() != 31 {
			t.Fatalf("round %d: %d wins, %d replays", round, wins.Load(), replays.Load())
		}
	}
	wantErr(t, s.ConsumeOnce("", time.Now()), ErrInvalid)
	wantErr(t, s.ConsumeOnce("k", time.Time{}), ErrInvalid)
}

func TestConsumeOnceExpiry(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	s.replayKeep = 0 // let expiresAt rule alone
	exp := time.Now().Add(500 * time.Millisecond)
	must(t, s.ConsumeOnce("k", exp))
	wantErr(t, s.ConsumeOnce("k", exp), ErrReplayed)
	time.Sleep(time.Until(exp) + 10*time.Millisecond)
	must(t, s.ConsumeOnce("k", time.Now().Add(time.Hour)))
	wantErr(t, s.ConsumeOnce("k", time.Now().Add(time.Hour)), ErrReplayed)
}

func TestConsumeOnceMinimumRetention(t *testing.T) {
	s := newTestStore(t)
	// An expiry already past (a caller's fake or skewed clock) still blocks replays.
	past := time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC)
	must(t, s.ConsumeOnce("old", past))
	wantErr(t, s.ConsumeOnce("old", past), ErrReplayed)
}
