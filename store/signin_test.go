package store

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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
