package store

import (
	"slices"
	"testing"
	"time"
)

// Each write moves exactly the watches of what it can change, and
// nothing a re-check does not read moves anything.
func TestWatchMovesOnlyWithWhatAWriteChanges(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "acme")
	mkOrg(t, s, "other")
	ann := mkUser(t, s, "acme", "ann@acme.test", "ann@acme.test")
	bob := mkUser(t, s, "acme", "bob@acme.test", "bob@acme.test")
	must(t, s.CreateSession(&Session{ID: "sess-ann", OrgID: "acme", UserID: ann.ID, AuthMethod: "saml", ExpiresAt: time.Now().Add(time.Hour)}))
	must(t, s.CreateSession(&Session{ID: "sess-bob", OrgID: "acme", UserID: bob.ID, AuthMethod: "saml", ExpiresAt: time.Now().Add(time.Hour)}))
	g := &Group{OrgID: "acme", DisplayName: "admins"}
	must(t, s.CreateGroup(g))

	watchAnn := func() Watch {
		return s.Watch(WatchSession("sess-ann"), WatchOrg("acme"), WatchUser("acme", ann.ID))
	}
	for _, tc := range []struct {
		name    string
		write   func() error
		changes bool
	}{
		{"another user updated", func() error {
			_, err := s.UpdateUser("acme", bob.ID, func(u *User) error { u.Active = false; return nil })
			return err
		}, false},
		{"another user's session ended", func() error { return s.DeleteSession("sess-bob") }, false},
		{"another user added to a group", func() error {
			_, err := s.UpdateGroup("acme", g.ID, func(g *Group) error {
				g.Members = append(g.Members, bob.ID)
				return nil
			})
			return err
		}, false},
		{"another user removed from a group", func() error {
			_, err := s.UpdateGroup("acme", g.ID, func(g *Group) error {
				g.Members = slices.DeleteFunc(g.Members, func(m string) bool { return m == bob.ID })
				return nil
			})
			return err
		}, false},
		{"another org changed", func() error {
			_, err := s.UpdateOrg("other", func(o *Org) error { o.Name = "Other Inc"; return nil })
			return err
		}, false},
		{"audit event", func() error { return s.AppendAudit(&AuditEvent{OrgID: "acme", Action: "x", Outcome: "success"}) }, false},
		{"sign-in attempt", func() error {
			return s.AddSignInAttempt(&SignInAttempt{OrgID: "acme", Outcome: "refused", Reason: "x"})
		}, false},
		{"replay key", func() error { return s.ConsumeOnce("k1", time.Now().Add(time.Minute)) }, false},
		{"session touched", func() error {
			must(t, s.TouchSession("sess-ann", time.Now().Add(time.Minute)))
			s.flushTouches()
			return nil
		}, false},
		{"user deactivated", func() error {
			_, err := s.UpdateUser("acme", ann.ID, func(u *User) error { u.Active = false; return nil })
			return err
		}, true},
		{"user added to a group", func() error {
			_, err := s.UpdateGroup("acme", g.ID, func(g *Group) error {
				g.Members = append(g.Members, ann.ID)
				return nil
			})
			return err
		}, true},
		{"group renamed", func() error {
			_, err := s.UpdateGroup("acme", g.ID, func(g *Group) error {
				g.DisplayName = "admins-renamed"
				return nil
			})
			return err
		}, true},
		{"group created", func() error {
			return s.CreateGroup(&Group{OrgID: "acme", DisplayName: "staff", ExternalID: "00gstaff"})
		}, true},
		{"org deactivated", func() error {
			_, err := s.UpdateOrg("acme", func(o *Org) error { o.State = OrgInactive; return nil })
			return err
		}, true},
		{"session deleted", func() error { return s.DeleteSession("sess-ann") }, true},
	} {
		w := watchAnn()
		if s.Changed(w) {
			t.Fatalf("%s: a fresh watch reports a change", tc.name)
		}
		if err := tc.write(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := s.Changed(w); got != tc.changes {
			t.Errorf("%s: Changed = %v, want %v", tc.name, got, tc.changes)
		}
	}
}

// Changes published by another process move the same slots, "*" and
// anything unreadable move everything, and while the channel is down
// nothing may be reused.
func TestWatchRemoteChanges(t *testing.T) {
	s := newTestStore(t)
	key := WatchUser("acme", "u1")
	w := s.Watch(key)
	s.marks.remoteChange([]string{changeFormat, "7"})
	if slotOf(key) != 7 && s.Changed(w) {
		t.Fatal("an unrelated remote change moved the watch")
	}
	rec := &recordingTxn{}
	rec.note(userKeyFor("acme", "u1"))
	s.marks.remoteChange(rec.changes())
	if !s.Changed(w) {
		t.Fatal("the remote change of the user did not move the watch")
	}
	for _, published := range [][]string{{changeAll}, {changeFormat, "not-hex"}, {changeFormat, "ffffffff"},
		{"7"}, {"v2:15", "7"}, {}} {
		w = s.Watch(key)
		s.marks.remoteChange(published)
		if !s.Changed(w) {
			t.Fatalf("remote %q did not move every watch", published)
		}
	}
	w = s.Watch(key)
	s.marks.setLive(false)
	if !s.Changed(w) {
		t.Fatal("a watch survived the loss of the change channel")
	}
	if w2 := s.Watch(key); !s.Changed(w2) {
		t.Fatal("a watch taken while changes may be missed is reusable")
	}
	s.marks.setLive(true)
	if w3 := s.Watch(key); s.Changed(w3) {
		t.Fatal("a watch taken after the channel is back is not reusable")
	}
}

// Every key prefix the store writes is mapped (an unmapped prefix would
// make its writes move everything, which is safe but slow, and hides a
// missing decision).
func TestEveryPrefixHasAWatchDecision(t *testing.T) {
	for _, p := range []string{pOrg, pOrgLive, pOrgDel, pDom, pUser, pUName, pUExt, pUMail, pGrp, pGName, pGExt, pGMem,
		pSess, pSessOrg, pSessUser, pSessName, pAuthn, pAuthnB, pAuthnOrg, pReplay, pAudit, pSecret, pCount, pUDel,
		pMeta, pSignIn, pLInv, pLInvUser, pLMail, pThr, pThrN, pFlash} {
		if _, ok := watchKeyOf(key(p, "a", "b", "c")); !ok {
			t.Errorf("prefix %q has no watch decision", p)
		}
	}
	if _, ok := watchKeyOf(key(pVDom, "acme.test")); ok {
		t.Error("a verified-domain change must move everything")
	}
}

func userKeyFor(org, id string) []byte { return key(pUser, org, id) }
