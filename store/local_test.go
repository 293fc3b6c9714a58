package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func tokenHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func localUser(org, email, role string) *User {
	return &User{OrgID: org, UserName: email, Emails: []Email{{Value: email, Primary: true}},
		Active: true, Source: SourceLocal, Role: role}
}

func invitation(token, purpose string, ttl time.Duration) *Invitation {
	return &Invitation{TokenHash: tokenHash(token), Purpose: purpose, ExpiresAt: time.Now().Add(ttl)}
}

func TestCreateOrgWithOwner(t *testing.T) {
	s := newTestStore(t)
	o := &Org{ID: "acme", Name: "Acme", OwnerEmail: "it@acme.com"}
	owner := localUser("", "IT@acme.com", RoleAdmin)
	inv := invitation("tok-1", InviteOwner, time.Hour)
	must(t, s.CreateOrgWithOwner(o, owner, inv))

	if owner.ID == "" || owner.OrgID != "acme" || o.BackupLogin != owner.ID || inv.UserID != owner.ID || inv.OrgID != "acme" {
		t.Fatalf("not filled in: org %+v owner %+v inv %+v", o, owner, inv)
	}
	got, err := s.GetOrg("acme")
	must(t, err)
	if got.BackupLogin != owner.ID || got.State != OrgInactive {
		t.Errorf("stored org = %+v", got)
	}
	u, err := s.UserByUserName("acme", "it@ACME.com")
	must(t, err)
	if u.ID != owner.ID || u.Source != SourceLocal || u.Role != RoleAdmin || u.PasswordHash != "" {
		t.Errorf("stored owner = %+v", u)
	}
	if n, _ := s.CountUsers("acme"); n != 1 {
		t.Errorf("CountUsers = %d", n)
	}
	accts, err := s.LocalAccountsByEmail("it@acme.com")
	must(t, err)
	if len(accts) != 1 || accts[0].ID != owner.ID {
		t.Errorf("LocalAccountsByEmail = %+v", accts)
	}
	if got, err := s.GetInvitation(tokenHash("tok-1")); err != nil || got.UserID != owner.ID || got.Purpose != InviteOwner {
		t.Errorf("GetInvitation = %+v, %v", got, err)
	}

	// A taken ID changes nothing, not even the other org's records.
	again := localUser("", "other@acme.com", RoleAdmin)
	wantErr(t, s.CreateOrgWithOwner(&Org{ID: "acme"}, again, invitation("tok-2", InviteOwner, time.Hour)), ErrExists)
	if _, err := s.GetInvitation(tokenHash("tok-2")); !errors.Is(err, ErrNotFound) {
		t.Errorf("refused creation left an invitation: %v", err)
	}
	if accts, _ := s.LocalAccountsByEmail("other@acme.com"); len(accts) != 0 {
		t.Errorf("refused creation left an account: %+v", accts)
	}

	// Bad input.
	wantErr(t, s.CreateOrgWithOwner(&Org{ID: "Bad"}, localUser("", "a@b.com", RoleAdmin), invitation("t", InviteOwner, time.Hour)), ErrInvalid)
	wantErr(t, s.CreateOrgWithOwner(&Org{ID: "beta"}, localUser("", "a@b.com", "root"), invitation("t", InviteOwner, time.Hour)), ErrInvalid)
	scim := localUser("", "a@b.com", RoleAdmin)
	scim.Source = SourceSCIM
	wantErr(t, s.CreateOrgWithOwner(&Org{ID: "beta"}, scim, invitation("t", InviteOwner, time.Hour)), ErrInvalid)
	wantErr(t, s.CreateOrgWithOwner(&Org{ID: "beta"}, localUser("", "a@b.com", RoleAdmin), invitation("t", InviteOwner, -time.Second)), ErrInvalid)
	wantErr(t, s.CreateOrgWithOwner(&Org{ID: "beta"}, localUser("", "a@b.com", RoleAdmin), &Invitation{TokenHash: "xyz", Purpose: InviteOwner, ExpiresAt: time.Now().Add(time.Hour)}), ErrInvalid)
	if _, err := s.GetOrg("beta"); !errors.Is(err, ErrNotFound) {
		t.Errorf("refused creation left org beta: %v", err)
	}
}

func TestInvitationsAreSingleUse(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "acme")
	u := localUser("acme", "bob@acme.com", RoleUser)
	inv := invitation("first", InviteUser, time.Hour)
	must(t, s.CreateLocalUser(u, inv))
	if inv.UserID != u.ID || inv.OrgID != "acme" {
		t.Fatalf("invitation not filled in: %+v", inv)
	}
	pending, err := s.PendingInvitations("acme")
	must(t, err)
	if _, ok := pending[u.ID]; !ok || len(pending) != 1 {
		t.Errorf("PendingInvitations = %v", pending)
	}

	// A newer link revokes the older one.
	must(t, s.IssueInvitation(&Invitation{TokenHash: tokenHash("second"), OrgID: "acme", UserID: u.ID, Purpose: InviteReset, ExpiresAt: time.Now().Add(time.Hour)}))
	_, err = s.GetInvitation(tokenHash("first"))
	wantErr(t, err, ErrNotFound)
	_, _, err = s.RedeemInvitation(tokenHash("first"), "hash-1")
	wantErr(t, err, ErrNotFound)

	// Two racing redemptions: exactly one wins.
	var wg sync.WaitGroup
	results := make([]error, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, results[i] = s.RedeemInvitation(tokenHash("second"), "hash-2")
		}()
	}
	wg.Wait()
	wins := 0
	for _, err := range results {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, ErrNotFound):
			t.Errorf("redeem: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d redemptions succeeded, want 1", wins)
	}
	got, err := s.GetUser("acme", u.ID)
	must(t, err)
	if got.PasswordHash != "hash-2" {
		t.Errorf("password hash = %q", got.PasswordHash)
	}
	if pending, _ := s.PendingInvitations("acme"); len(pending) != 0 {
		t.Errorf("pending after use = %v", pending)
	}
	if keys := rawKeys(t, s, pLInv+"/"); len(keys) != 0 {
		t.Errorf("invitation records left: %v", keys)
	}

	// Links of non-local users, unknown users and orgs are refused.
	scim := mkUser(t, s, "acme", "carol@acme.com", "carol@acme.com")
	wantErr(t, s.IssueInvitation(&Invitation{TokenHash: tokenHash("x"), OrgID: "acme", UserID: scim.ID, Purpose: InviteReset, ExpiresAt: time.Now().Add(time.Hour)}), ErrInvalid)
	wantErr(t, s.IssueInvitation(&Invitation{TokenHash: tokenHash("x"), OrgID: "acme", UserID: "nobody", Purpose: InviteReset, ExpiresAt: time.Now().Add(time.Hour)}), ErrNotFound)
	wantErr(t, s.IssueInvitation(&Invitation{TokenHash: tokenHash("x"), OrgID: "nope", UserID: u.ID, Purpose: InviteReset, ExpiresAt: time.Now().Add(time.Hour)}), ErrNotFound)
	wantErr(t, s.CreateLocalUser(localUser("acme", "CAROL@acme.com", RoleUser), invitation("y", InviteUser, time.Hour)), ErrConflict)
}

func TestExpiredInvitationRefused(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "acme")
	u := localUser("acme", "bob@acme.com", RoleUser)
	must(t, s.CreateLocalUser(u, invitation("soon", InviteUser, 1200*time.Millisecond)))
	if _, err := s.GetInvitation(tokenHash("soon")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1300 * time.Millisecond)
	_, err := s.GetInvitation(tokenHash("soon"))
	wantErr(t, err, ErrNotFound)
	_, _, err = s.RedeemInvitation(tokenHash("soon"), "h")
	wantErr(t, err, ErrNotFound)
	if pending, _ := s.PendingInvitations("acme"); len(pending) != 0 {
		t.Errorf("expired link still pending: %v", pending)
	}
	got, _ := s.GetUser("acme", u.ID)
	if got.PasswordHash != "" {
		t.Error("expired link set a password")
	}
}

func TestLocalAccountsByEmailAcrossOrgs(t *testing.T) {
	s := newTestStore(t)
	mkOrg(t, s, "acme")
	mkOrg(t, s, "beta")
	a := localUser("acme", "pat@shared.com", RoleAdmin)
	must(t, s.CreateLocalUser(a, invitation("a", InviteUser, time.Hour)))
	time.Sleep(2 * time.Millisecond)
	b := localUser("beta", "Pat@Shared.com", RoleUser)
	must(t, s.CreateLocalUser(b, invitation("b", InviteUser, time.Hour)))
	// A user of another source with the same address is not a local account.
	mkUser(t, s, "beta", "pat2", "pat@shared.com")

	got, err := s.LocalAccountsByEmail("PAT@shared.com")
	must(t, err)
	if len(got) != 2 || got[0].ID != a.ID || got[1].ID != b.ID {
		t.Fatalf("LocalAccountsByEmail = %+v", got)
	}

	// Deleting the user through the plain API leaves a stale index entry,
	// which readers skip.
	must(t, s.DeleteUser("acme", a.ID))
	got, _ = s.LocalAccountsByEmail("pat@shared.com")
	if len(got) != 1 || got[0].ID != b.ID {
		t.Errorf("after DeleteUser: %+v", got)
	}
	// So does deleting the org.
	must(t, s.DeleteOrg("beta"))
	if got, _ = s.LocalAccountsByEmail("pat@shared.com"); len(got) != 0 {
		t.Errorf("after DeleteOrg: %+v", got)
	}
	// A re-created org with a new user under the same address: only the
	// new account counts.
	mkOrg(t, s, "beta")
	c := localUser("beta", "pat@shared.com", RoleUser)
	must(t, s.CreateLocalUser(c, invitation("c", InviteUser, time.Hour)))
	if got, _ = s.LocalAccountsByEmail("pat@shared.com"); len(got) != 1 || got[0].ID != c.ID {
		t.Errorf("after re-creation: %+v", got)
	}
}

func TestDeleteLocalUser(t *testing.T) {
	s := newTestStore(t)
	o := &Org{ID: "acme", Name: "Acme"}
	owner := localUser("", "it@acme.com", RoleAdmin)
	must(t, s.CreateOrgWithOwner(o, owner, invitation("o", InviteOwner, time.Hour)))
	bob := localUser("acme", "bob@acme.com", RoleUser)
	must(t, s.CreateLocalUser(bob, invitation("b", InviteUser, time.Hour)))
	must(t, s.CreateSession(&Session{ID: "s-bob", OrgID: "acme", UserID: bob.ID, AuthMethod: "password", ExpiresAt: time.Now().Add(time.Hour)}))

	// The backup login stays until another account is designated.
	_, err := s.DeleteLocalUser("acme", owner.ID)
	wantErr(t, err, ErrConflict)
	scim := mkUser(t, s, "acme", "carol@acme.com", "carol@acme.com")
	_, err = s.DeleteLocalUser("acme", scim.ID)
	wantErr(t, err, ErrInvalid)
	_, err = s.DeleteLocalUser("beta", bob.ID)
	wantErr(t, err, ErrNotFound)

	gone, err := s.DeleteLocalUser("acme", bob.ID)
	must(t, err)
	if gone.ID != bob.ID {
		t.Errorf("returned %+v", gone)
	}
	if _, err := s.GetUser("acme", bob.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("user still there: %v", err)
	}
	if _, err := s.GetSession("s-bob"); !errors.Is(err, ErrNotFound) {
		t.Errorf("session survived: %v", err)
	}
	if _, err := s.GetInvitation(tokenHash("b")); !errors.Is(err, ErrNotFound) {
		t.Errorf("invitation survived: %v", err)
	}
	if keys := rawKeys(t, s, pLMail+"/bob@acme.com/"); len(keys) != 0 {
		t.Errorf("address index left: %v", keys)
	}
	if keys := rawKeys(t, s, pLInvUser+"/acme/"+bob.ID); len(keys) != 0 {
		t.Errorf("invitation marker left: %v", keys)
	}
}

func TestSetBackupLogin(t *testing.T) {
	s := newTestStore(t)
	o := &Org{ID: "acme", Name: "Acme"}
	owner := localUser("", "it@acme.com", RoleAdmin)
	must(t, s.CreateOrgWithOwner(o, owner, invitation("o", InviteOwner, time.Hour)))
	bob := localUser("acme", "bob@acme.com", RoleUser)
	must(t, s.CreateLocalUser(bob, invitation("b", InviteUser, time.Hour)))

	notYet := errors.New("not eligible")
	_, _, err := s.SetBackupLogin("acme", bob.ID, func(u *User) error {
		if u.LastLogin.IsZero() {
			return notYet
		}
		return nil
	})
	if !errors.Is(err, notYet) {
		t.Fatalf("got %v", err)
	}
	if got, _ := s.GetOrg("acme"); got.BackupLogin != owner.ID {
		t.Fatal("refused designation changed the org")
	}
	org, prev, err := s.SetBackupLogin("acme", bob.ID, func(*User) error { return nil })
	must(t, err)
	if prev != owner.ID || org.BackupLogin != bob.ID {
		t.Errorf("prev %q, org %+v", prev, org)
	}
	_, _, err = s.SetBackupLogin("acme", "nobody", func(*User) error { return nil })
	wantErr(t, err, ErrNotFound)
	_, _, err = s.SetBackupLogin("nope", bob.ID, func(*User) error { return nil })
	wantErr(t, err, ErrNotFound)
	// Now the owner may go, and the new backup may not.
	if _, err := s.DeleteLocalUser("acme", owner.ID); err != nil {
		t.Errorf("deleting the former backup: %v", err)
	}
	_, err = s.DeleteLocalUser("acme", bob.ID)
	wantErr(t, err, ErrConflict)
}

// TestConcurrentInvitationsLeaveOneLink: set-password links issued for one
// account at the same moment cannot all stay valid; exactly the one
// committed last works. Each issuance also changes the account's
// credential version.
func TestConcurrentInvitationsLeaveOneLink(t *testing.T) {
	s := newTestStore(t)
	u := localUser("", "it@acme.com", RoleAdmin)
	must(t, s.CreateOrgWithOwner(&Org{ID: "acme", Name: "Acme"}, u, invitation("first", InviteOwner, time.Hour)))
	// Each round starts without a pending link (the last one is used), so
	// the racing transactions find no earlier link in common to revoke.
	_, _, err := s.RedeemInvitation(tokenHash("first"), "$argon2id$hash")
	must(t, err)
	const rounds, n = 150, 8
	for round := range rounds {
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				inv := &Invitation{TokenHash: tokenHash(fmt.Sprint(round, "-", i)), OrgID: "acme", UserID: u.ID, Purpose: InviteReset, ExpiresAt: time.Now().Add(time.Hour)}
				if err := s.IssueInvitation(inv); err != nil {
					t.Error(err)
				}
			})
		}
		close(start)
		wg.Wait()
		live := 0
		for i := range n {
			if _, err := s.GetInvitation(tokenHash(fmt.Sprint(round, "-", i))); err == nil {
				live++
			}
		}
		if live != 1 {
			t.Fatalf("round %d: %d of %d concurrently issued links are valid, want 1", round, live, n)
		}
		if p, err := s.PendingInvitations("acme"); err != nil || len(p) != 1 {
			t.Fatalf("round %d: pending %v, %v", round, p, err)
		}
		for i := range n {
			if _, _, err := s.RedeemInvitation(tokenHash(fmt.Sprint(round, "-", i)), "$argon2id$hash"); err == nil {
				break
			}
		}
	}
	got, err := s.GetUser("acme", u.ID)
	must(t, err)
	if want := uint64(1 + rounds*(n+1)); got.CredVersion != want {
		t.Errorf("credential version %d after %d issued and %d used links, want %d", got.CredVersion, rounds*n, rounds+1, want)
	}
}

// TestRedeemChangesCredentialVersion: setting the password through a link
// changes the version, as issuing the link did; a record written before
// the field existed reads as version 0.
func TestRedeemChangesCredentialVersion(t *testing.T) {
	s := newTestStore(t)
	u := localUser("", "it@acme.com", RoleAdmin)
	must(t, s.CreateOrgWithOwner(&Org{ID: "acme", Name: "Acme"}, u, invitation("first", InviteOwner, time.Hour)))
	if got, _ := s.GetUser("acme", u.ID); got.CredVersion != 0 {
		t.Fatalf("new account at version %d", got.CredVersion)
	}
	_, redeemed, err := s.RedeemInvitation(tokenHash("first"), "$argon2id$hash")
	must(t, err)
	if redeemed.CredVersion != 1 {
		t.Errorf("after redeeming: version %d", redeemed.CredVersion)
	}
	var old User
	if err := json.Unmarshal([]byte(`{"id":"x","org_id":"acme","user_name":"a@acme.com","active":true,"source":"local","password_hash":"h"}`), &old); err != nil || old.CredVersion != 0 {
		t.Errorf("old record: version %d, %v", old.CredVersion, err)
	}
}

// Deleting an org takes its pending invitation links and its flashes
// with it, and leaves another org's alone.
func TestDeleteOrgPurgesInvitationsAndFlashes(t *testing.T) {
	onBackends(t, testDeleteOrgPurgesInvitationsAndFlashes)
}

func testDeleteOrgPurgesInvitationsAndFlashes(t *testing.T, s *Store) {
	for _, org := range []string{"acme", "beta"} {
		mkOrg(t, s, org)
		must(t, s.CreateLocalUser(localUser(org, "pat@"+org+".test", RoleUser), invitation("tok-"+org, InviteUser, time.Hour)))
		must(t, s.PutFlash(org, "sess-"+org, []byte("id"), []byte("sealed"), time.Now().Add(time.Hour), 10))
	}
	count := func() (inv, marks, flashes int) {
		return len(rawKeys(t, s, pLInv+"/")), len(rawKeys(t, s, pLInvUser+"/")), len(rawKeys(t, s, pFlash+"/"))
	}
	if inv, marks, flashes := count(); inv != 2 || marks != 2 || flashes != 2 {
		t.Fatalf("before: %d invitations, %d markers, %d flashes; want 2 each", inv, marks, flashes)
	}
	must(t, s.DeleteOrg("acme"))
	if inv, marks, flashes := count(); inv != 1 || marks != 1 || flashes != 1 {
		t.Fatalf("after deleting acme: %d invitations, %d markers, %d flashes; want beta's 1 each", inv, marks, flashes)
	}
	if _, err := s.GetInvitation(tokenHash("tok-beta")); err != nil {
		t.Errorf("beta's invitation: %v", err)
	}
	if _, err := s.GetInvitation(tokenHash("tok-acme")); !errors.Is(err, ErrNotFound) {
		t.Errorf("acme's invitation after DeleteOrg: %v", err)
	}
}
