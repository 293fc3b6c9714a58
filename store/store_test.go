package store

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestOpenRejectsEmptyDir(t *testing.T) {
	_, err := Open("", Options{})
	wantErr(t, err, ErrInvalid)
}

func TestOpenLockedDirFails(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{GCInterval: -1})
	must(t, err)
	defer s.Close()
	s2, err := Open(dir, Options{})
	if err == nil {
		s2.Close()
		t.Fatal("second Open of the same directory succeeded")
	}
}

func TestCloseIdempotentAndClosedErrors(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "acme")
	must(t, s.Close())
	wantErr(t, s.Close(), ErrClosed)
	_, err := s.GetOrg("acme")
	wantErr(t, err, ErrClosed)
	wantErr(t, s.CreateOrg(&Org{ID: "other"}), ErrClosed)
	wantErr(t, s.TouchSession("x", time.Now()), ErrClosed)
	_, _, err = s.ListUsers("acme", 0, 10)
	wantErr(t, err, ErrClosed)
}

func TestCloseWaitsForConcurrentUse(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "acme")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				if _, err := s.GetOrg("acme"); err != nil {
					if !errors.Is(err, ErrClosed) {
						t.Errorf("GetOrg: %v", err)
					}
					return
				}
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	must(t, s.Close())
	wg.Wait()
}

func TestReopenKeepsEverything(t *testing.T) {
	s, dir := openTestStore(t)
	mkOrg(t, s, "acme")
	must(t, s.AddDomain(&Domain{OrgID: "acme", Name: "acme.com", Status: DomainVerified}))
	u := mkUser(t, s, "acme", "alice", "alice@acme.com")
	g := &Group{OrgID: "acme", DisplayName: "Admins", Members: []string{u.ID}}
	must(t, s.CreateGroup(g))
	sess := &Session{ID: "s1", OrgID: "acme", UserID: u.ID, AuthMethod: "saml", ExpiresAt: time.Now().Add(time.Hour)}
	must(t, s.CreateSession(sess))
	seen := time.Now().Add(time.Minute).UTC().Round(0)
	must(t, s.TouchSession("s1", seen)) // buffered: Close must flush it
	must(t, s.AppendAudit(&AuditEvent{OrgID: "acme", Actor: "op", Action: "create", Outcome: "success"}))
	secret, err := s.GetOrCreateSecret("k", func() ([]byte, error) { return []byte("sekrit"), nil })
	must(t, err)
	must(t, s.ConsumeOnce("assertion-1", time.Now().Add(time.Hour)))
	must(t, s.Close())

	s2, err := reopenStore(dir, Options{GCInterval: -1})
	must(t, err)
	defer s2.Close()
	if _, err := s2.GetOrg("acme"); err != nil {
		t.Fatal(err)
	}
	if org, err := s2.OrgForDomain("acme.com"); err != nil || org != "acme" {
		t.Fatalf("OrgForDomain = %q, %v", org, err)
	}
	if got, err := s2.UserByEmail("acme", "ALICE@acme.com"); err != nil || got.ID != u.ID {
		t.Fatalf("UserByEmail = %v, %v", got, err)
	}
	if ok, err := s2.IsMember("acme", g.ID, u.ID); err != nil || !ok {
		t.Fatalf("IsMember = %v, %v", ok, err)
	}
	got, err := s2.GetSession("s1")
	must(t, err)
	if !got.LastSeen.Equal(seen) {
		t.Errorf("LastSeen after reopen = %v, want %v", got.LastSeen, seen)
	}
	if ev, err := s2.ListAudit("acme", 0); err != nil || len(ev) != 1 {
		t.Fatalf("ListAudit = %v, %v", ev, err)
	}
	again, err := s2.GetOrCreateSecret("k", func() ([]byte, error) { return []byte("other"), nil })
	must(t, err)
	if string(again) != string(secret) {
		t.Errorf("secret changed across reopen: %q vs %q", again, secret)
	}
	wantErr(t, s2.ConsumeOnce("assertion-1", time.Now().Add(time.Hour)), ErrReplayed)
	if n, err := s2.CountUsers("acme"); err != nil || n != 1 {
		t.Fatalf("CountUsers = %d, %v", n, err)
	}
}

func TestOrgCRUD(t *testing.T) {
	s := newTestStore(t)
	for _, bad := range []string{"", "a", "UPPER", "has space", "sl/ash", "x_y", "abcdefghijabcdefghijabcdefghijabcdefghij1"} {
		wantErr(t, s.CreateOrg(&Org{ID: bad}), ErrInvalid)
	}
	wantErr(t, s.CreateOrg(nil), ErrInvalid)
	wantErr(t, s.CreateOrg(&Org{ID: "okay", State: "bogus"}), ErrInvalid)

	o := &Org{ID: "zeta", Name: "Zeta", Steps: map[string]bool{"one": true}}
	must(t, s.CreateOrg(o))
	if o.State != OrgInactive || o.Created.IsZero() || !o.Updated.Equal(o.Created) {
		t.Fatalf("defaults not applied: %+v", o)
	}
	wantErr(t, s.CreateOrg(&Org{ID: "zeta"}), ErrExists)
	mkOrg(t, s, "alpha")

	got, err := s.GetOrg("zeta")
	must(t, err)
	if got.Name != "Zeta" || !got.Created.Equal(o.Created) || !got.Steps["one"] {
		t.Fatalf("GetOrg = %+v", got)
	}
	got.Steps["one"] = false // a copy: must not affect the store
	got2, _ := s.GetOrg("zeta")
	if !got2.Steps["one"] {
		t.Fatal("GetOrg returned shared state")
	}
	_, err = s.GetOrg("nope")
	wantErr(t, err, ErrNotFound)
	_, err = s.GetOrg("")
	wantErr(t, err, ErrInvalid)

	orgs, err := s.ListOrgs()
	must(t, err)
	if len(orgs) != 2 || orgs[0].ID != "alpha" || orgs[1].ID != "zeta" {
		t.Fatalf("ListOrgs = %v", orgs)
	}

	time.Sleep(time.Millisecond)
	up, err := s.UpdateOrg("zeta", func(o *Org) error {
		o.State = OrgActive
		o.StateChangedBy = "admin"
		return nil
	})
	must(t, err)
	if up.State != OrgActive || !up.Updated.After(o.Updated) {
		t.Fatalf("UpdateOrg = %+v", up)
	}
	boom := errors.New("boom")
	_, err = s.UpdateOrg("zeta", func(o *Org) error { o.Name = "changed"; return boom })
	if err != boom {
		t.Fatalf("fn error = %v, want it returned as is", err)
	}
	_, err = s.UpdateOrg("zeta", func(o *Org) error { o.ID = "other"; return nil })
	wantErr(t, err, ErrInvalid)
	_, err = s.UpdateOrg("zeta", func(o *Org) error { o.State = "weird"; return nil })
	wantErr(t, err, ErrInvalid)
	got, _ = s.GetOrg("zeta")
	if got.Name != "Zeta" || got.State != OrgActive {
		t.Fatalf("failed updates changed the org: %+v", got)
	}
	_, err = s.UpdateOrg("nope", func(*Org) error { return nil })
	wantErr(t, err, ErrNotFound)

	must(t, s.DeleteOrg("alpha"))
	wantErr(t, s.DeleteOrg("alpha"), ErrNotFound)
	_, err = s.GetOrg("alpha")
	wantErr(t, err, ErrNotFound)
}

func TestUpdateOrgConcurrentIncrementsAllApply(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "acme")
	const n = 20
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := s.UpdateOrg("acme", func(o *Org) error {
				if o.Steps == nil {
					o.Steps = map[string]bool{}
				}
				o.Name += "x"
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	o, _ := s.GetOrg("acme")
	if got := len(o.Name) - len("Org acme"); got != n {
		t.Fatalf("%d of %d read-modify-write updates survived", got, n)
	}
}

func TestDomainVerificationAcrossOrgs(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "org-a")
	mkOrg(t, s, "org-b")
	mkOrg(t, s, "org-c")

	wantErr(t, s.AddDomain(&Domain{OrgID: "org-a", Name: "Example.com"}), ErrInvalid)
	wantErr(t, s.AddDomain(&Domain{OrgID: "ghost", Name: "example.com"}), ErrNotFound)

	// Pending claims by several orgs are allowed.
	must(t, s.AddDomain(&Domain{OrgID: "org-a", Name: "example.com", Token: "ta"}))
	must(t, s.AddDomain(&Domain{OrgID: "org-b", Name: "example.com", Token: "tb"}))
	wantErr(t, s.AddDomain(&Domain{OrgID: "org-a", Name: "example.com"}), ErrExists)
	_, err := s.OrgForDomain("example.com")
	wantErr(t, err, ErrNotFound)

	d, err := s.GetDomain("org-a", "example.com")
	must(t, err)
	if d.Status != DomainPending || d.Token != "ta" {
		t.Fatalf("GetDomain = %+v", d)
	}

	// First to verify wins.
	d, err = s.UpdateDomain("org-b", "example.com", func(d *Domain) error { d.Status = DomainVerified; return nil })
	must(t, err)
	if d.VerifiedAt.IsZero() {
		t.Error("VerifiedAt not set")
	}
	_, err = s.UpdateDomain("org-a", "example.com", func(d *Domain) error { d.Status = DomainVerified; return nil })
	wantErr(t, err, ErrConflict)
	if d, _ := s.GetDomain("org-a", "example.com"); d.Status != DomainPending {
		t.Fatal("losing verification changed the record")
	}
	if org, err := s.OrgForDomain("example.com"); err != nil || org != "org-b" {
		t.Fatalf("OrgForDomain = %q, %v", org, err)
	}
	// A verified domain cannot be added by another org, even as pending.
	wantErr(t, s.AddDomain(&Domain{OrgID: "org-c", Name: "example.com"}), ErrConflict)

	// Re-verifying by the holder is fine; falling back to pending frees it.
	_, err = s.UpdateDomain("org-b", "example.com", func(d *Domain) error { d.LastResult = "ok"; return nil })
	must(t, err)
	_, err = s.UpdateDomain("org-b", "example.com", func(d *Domain) error { d.Status = DomainPending; return nil })
	must(t, err)
	_, err = s.OrgForDomain("example.com")
	wantErr(t, err, ErrNotFound)
	_, err = s.UpdateDomain("org-a", "example.com", func(d *Domain) error { d.Status = DomainVerified; return nil })
	must(t, err)

	// A non-holder removing its pending claim leaves the holder alone.
	must(t, s.RemoveDomain("org-b", "example.com"))
	if org, _ := s.OrgForDomain("example.com"); org != "org-a" {
		t.Fatalf("OrgForDomain after other org removed its claim = %q", org)
	}
	// Removing frees it.
	must(t, s.RemoveDomain("org-a", "example.com"))
	wantErr(t, s.RemoveDomain("org-a", "example.com"), ErrNotFound)
	_, err = s.OrgForDomain("example.com")
	wantErr(t, err, ErrNotFound)
	must(t, s.AddDomain(&Domain{OrgID: "org-c", Name: "example.com", Status: DomainVerified}))
	if org, _ := s.OrgForDomain("example.com"); org != "org-c" {
		t.Fatalf("OrgForDomain = %q, want org-c", org)
	}

	_, err = s.UpdateDomain("org-c", "example.com", func(d *Domain) error { d.OrgID = "org-a"; return nil })
	wantErr(t, err, ErrInvalid)
	_, err = s.UpdateDomain("org-c", "example.com", func(d *Domain) error { d.Status = "maybe"; return nil })
	wantErr(t, err, ErrInvalid)
	_, err = s.UpdateDomain("org-c", "nope.com", func(d *Domain) error { return nil })
	wantErr(t, err, ErrNotFound)
}

func TestConcurrentVerificationOneWinner(t *testing.T) {
	s := newTestStore(t)
	orgs := []string{"o1", "o2", "o3", "o4", "o5", "o6"}
	for _, o := range orgs {
		mkOrg(t, s, o)
		must(t, s.AddDomain(&Domain{OrgID: o, Name: "contested.org"}))
	}
	var mu sync.Mutex
	var winners []string
	var wg sync.WaitGroup
	for _, o := range orgs {
		wg.Go(func() {
			_, err := s.UpdateDomain(o, "contested.org", func(d *Domain) error { d.Status = DomainVerified; return nil })
			switch {
			case err == nil:
				mu.Lock()
				winners = append(winners, o)
				mu.Unlock()
			case !errors.Is(err, ErrConflict):
				t.Errorf("%s: %v", o, err)
			}
		})
	}
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("winners = %v, want exactly one", winners)
	}
	if org, _ := s.OrgForDomain("contested.org"); org != winners[0] {
		t.Fatalf("OrgForDomain = %q, winner %q", org, winners[0])
	}
}

func TestListDomainsSortedAndScoped(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "ab")
	mkOrg(t, s, "abc")
	for _, n := range []string{"zz.com", "aa.com", "mm.com"} {
		must(t, s.AddDomain(&Domain{OrgID: "ab", Name: n}))
	}
	must(t, s.AddDomain(&Domain{OrgID: "abc", Name: "other.com"}))
	ds, err := s.ListDomains("ab")
	must(t, err)
	var names []string
	for _, d := range ds {
		names = append(names, d.Name)
	}
	if !slices.Equal(names, []string{"aa.com", "mm.com", "zz.com"}) {
		t.Fatalf("ListDomains = %v", names)
	}
}

func TestDeleteOrgRemovesOnlyItsData(t *testing.T) {
	s := newTestStore(t)
	fill := func(org, domain string) (*User, *Group) {
		mkOrg(t, s, org)
		must(t, s.AddDomain(&Domain{OrgID: org, Name: domain, Status: DomainVerified}))
		must(t, s.AddDomain(&Domain{OrgID: org, Name: "pending-" + domain}))
		u := mkUser(t, s, org, "alice", "alice@"+domain)
		u2 := mkUser(t, s, org, "bob/slash", "bob@"+domain)
		g := &Group{OrgID: org, DisplayName: "Admins", ExternalID: "g-ext", Members: []string{u.ID, u2.ID}}
		must(t, s.CreateGroup(g))
		must(t, s.CreateSession(&Session{ID: "sess-" + org, OrgID: org, UserID: u.ID, AuthMethod: "saml", ExpiresAt: time.Now().Add(time.Hour)}))
		must(t, s.PutAuthnRequest(&AuthnRequest{ID: "req-" + org, OrgID: org, Binding: "bind", ExpiresAt: time.Now().Add(time.Hour)}))
		must(t, s.AppendAudit(&AuditEvent{OrgID: org, Action: "x"}))
		return u, g
	}
	// "ab" is a prefix of "ab-c": the scans must not cross.
	fill("ab", "ab.com")
	keepU, keepG := fill("ab-c", "abc.com")
	before := rawKeys(t, s, "")

	must(t, s.DeleteOrg("ab"))

	_, err := s.GetOrg("ab")
	wantErr(t, err, ErrNotFound)
	_, err = s.OrgForDomain("ab.com")
	wantErr(t, err, ErrNotFound)
	_, err = s.GetSession("sess-ab")
	wantErr(t, err, ErrNotFound)
	_, err = s.ConsumeAuthnRequest("req-ab")
	wantErr(t, err, ErrNotFound)
	if n, _ := s.CountUsers("ab"); n != 0 {
		t.Errorf("CountUsers after delete = %d", n)
	}

	// Nothing scoped to "ab" is left, except its audit trail.
	after := rawKeys(t, s, "")
	for _, k := range after {
		if strings.HasPrefix(k, "audit/") {
			continue
		}
		if hasSegment(k, "ab", "sess-ab", "req-ab", "ab.com", "pending-ab.com") {
			t.Errorf("leftover key %q", k)
		}
	}
	if ev, _ := s.ListAudit("ab", 0); len(ev) != 1 {
		t.Errorf("audit events of deleted org = %d, want kept", len(ev))
	}
	// Everything of "ab-c" is still there.
	for _, k := range before {
		if hasSegment(k, "ab-c", "sess-ab-c", "req-ab-c", "abc.com", "pending-abc.com") && !slices.Contains(after, k) {
			t.Errorf("key of the other org vanished: %q", k)
		}
	}
	if org, _ := s.OrgForDomain("abc.com"); org != "ab-c" {
		t.Error("other org lost its domain")
	}
	if ok, _ := s.IsMember("ab-c", keepG.ID, keepU.ID); !ok {
		t.Error("other org lost a membership")
	}
	if _, err := s.GetSession("sess-ab-c"); err != nil {
		t.Error("other org lost its session")
	}

	// The ID can be reused and starts empty; the domain is free.
	mkOrg(t, s, "ab")
	if users, total, _ := s.ListUsers("ab", 0, -1); total != 0 || len(users) != 0 {
		t.Fatalf("recreated org has users: %d %v", total, users)
	}
	must(t, s.AddDomain(&Domain{OrgID: "ab", Name: "ab.com", Status: DomainVerified}))
	mkUser(t, s, "ab", "alice") // the old userName index is gone
}

func hasSegment(k string, segs ...string) bool {
	for _, seg := range strings.Split(k, "/") {
		if slices.Contains(segs, seg) {
			return true
		}
	}
	return false
}

func TestDeleteOrgLargeInBatches(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "big")
	mkOrg(t, s, "small")
	mkUser(t, s, "small", "keep")
	bulkLoadUsers(t, s, "big", 3*purgeBatch+7, func(i int) string { return "u" + strconv.Itoa(i) })
	must(t, s.DeleteOrg("big"))
	if keys := rawKeys(t, s, "user/big/"); len(keys) != 0 {
		t.Fatalf("%d user keys left", len(keys))
	}
	if keys := rawKeys(t, s, "umail/big/"); len(keys) != 0 {
		t.Fatalf("%d email keys left", len(keys))
	}
	if _, err := s.UserByUserName("small", "keep"); err != nil {
		t.Fatal(err)
	}
}

func TestInterruptedOrgDeletionResumesOnOpen(t *testing.T) {
	s, dir := openTestStore(t)
	mkOrg(t, s, "gone")
	mkUser(t, s, "gone", "alice")
	// Simulate a crash right after DeleteOrg's first transaction.
	must(t, rawUpdate(s, func(txn Txn) error {
		must(t, txn.Delete(key(pOrg, "gone")))
		must(t, txn.Delete(key(pOrgLive, "gone")))
		return txn.Set(key(pOrgDel, "gone"), []byte("true"), 0)
	}))
	wantErr(t, s.CreateOrg(&Org{ID: "gone"}), ErrConflict)
	must(t, s.Close())

	s2, err := reopenStore(dir, Options{GCInterval: -1})
	must(t, err)
	defer s2.Close()
	// meta/ holds the store's own bookkeeping, not the org's data.
	keys := slices.DeleteFunc(rawKeys(t, s2, ""), func(k string) bool { return strings.HasPrefix(k, pMeta+"/") })
	if len(keys) != 0 {
		t.Fatalf("keys left after resumed purge: %v", keys)
	}
	mkOrg(t, s2, "gone")
}
