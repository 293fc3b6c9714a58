package local

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
)

// countingHasher is the real Argon2id hasher with a count of the hashes
// it runs, to check that every attempt costs the same work.
type countingHasher struct {
	*Argon2id
	verifies, hashes atomic.Int32
}

func (c *countingHasher) Verify(ctx context.Context, enc, pw string) (bool, error) {
	c.verifies.Add(1)
	return c.Argon2id.Verify(ctx, enc, pw)
}

func (c *countingHasher) Hash(ctx context.Context, pw string) (string, error) {
	c.hashes.Add(1)
	return c.Argon2id.Hash(ctx, pw)
}

type signinEnv struct {
	t      *testing.T
	st     *store.Store
	hasher *countingHasher
	clock  *clock
	auth   *Authenticator
}

const goodPassword = "lantern paper harbour"

func newSigninEnv(t *testing.T) *signinEnv {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	c := newClock()
	h := &countingHasher{Argon2id: newTestHasher(t)}
	cfg := ThrottleConfig{Free: 3, Base: time.Minute, Max: time.Hour, Now: c.now}
	devices, err := NewDevices([][]byte{[]byte("device key of at least thirty-two bytes")})
	if err != nil {
		t.Fatal(err)
	}
	devices.Now = c.now
	e := &signinEnv{t: t, st: st, hasher: h, clock: c, auth: &Authenticator{
		Store: st, Hasher: h,
		Accounts: NewThrottle(st, ScopeAccount, cfg), Devices: NewThrottle(st, ScopeDevice, cfg),
		Sources:      NewThrottle(st, ScopeSource, ThrottleConfig{Free: 20, Base: time.Minute, Max: time.Hour, Now: c.now}),
		DeviceTokens: devices,
	}}
	return e
}

// deviceToken issues a trusted-device token for the account as stored now.
func (e *signinEnv) deviceToken(org, email string) string {
	e.t.Helper()
	u, err := e.st.UserByUserName(org, email)
	if err != nil {
		e.t.Fatal(err)
	}
	tok, err := e.auth.DeviceTokens.Issue(u)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// org creates an org whose owner (the backup login) has a password, and
// returns the owner.
func (e *signinEnv) org(id, owner string) *store.User {
	e.t.Helper()
	u := &store.User{UserName: owner, Emails: []store.Email{{Value: owner, Primary: true}}, Active: true, Source: store.SourceLocal, Role: store.RoleAdmin}
	tok, hash, _ := NewLinkToken()
	_ = tok
	if err := e.st.CreateOrgWithOwner(&store.Org{ID: id, Name: id}, u, &store.Invitation{TokenHash: hash, Purpose: store.InviteOwner, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		e.t.Fatal(err)
	}
	e.setPassword(u, goodPassword)
	return u
}

func (e *signinEnv) user(org, email string, withPassword bool) *store.User {
	e.t.Helper()
	u := &store.User{OrgID: org, UserName: email, Emails: []store.Email{{Value: email, Primary: true}}, Active: true, Source: store.SourceLocal, Role: store.RoleUser}
	_, hash, _ := NewLinkToken()
	if err := e.st.CreateLocalUser(u, &store.Invitation{TokenHash: hash, Purpose: store.InviteUser, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		e.t.Fatal(err)
	}
	if withPassword {
		e.setPassword(u, goodPassword)
	}
	return u
}

func (e *signinEnv) setPassword(u *store.User, pw string) {
	e.t.Helper()
	h, err := e.hasher.Argon2id.Hash(context.Background(), pw)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.st.UpdateUser(u.OrgID, u.ID, func(x *store.User) error { x.PasswordHash = h; return nil }); err != nil {
		e.t.Fatal(err)
	}
}

func (e *signinEnv) verifyDomain(org, domain string) {
	e.t.Helper()
	if err := e.st.AddDomain(&store.Domain{Name: domain, OrgID: org, Token: "t", Status: store.DomainVerified}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *signinEnv) activate(org string) {
	e.t.Helper()
	if _, err := e.st.UpdateOrg(org, func(o *store.Org) error { o.State = store.OrgActive; return nil }); err != nil {
		e.t.Fatal(err)
	}
}

// try runs an attempt and checks that it cost exactly one verification.
func (e *signinEnv) try(at Attempt) Result {
	e.t.Helper()
	before := e.hasher.verifies.Load()
	res, err := e.auth.Authenticate(context.Background(), at)
	if err != nil {
		e.t.Fatalf("Authenticate(%s): %v", at.Email, err)
	}
	n := e.hasher.verifies.Load() - before
	want := int32(1) // OutcomeOverloaded: the call that the hasher refused
	switch res.Outcome {
	case OutcomeLocked, OutcomeBusy:
		want = 0
	}
	if n != want {
		e.t.Errorf("attempt for %q (%s) ran %d password verifications, want %d", at.Email, res.Outcome, n, want)
	}
	return res
}

// TestEveryPathCostsOneHash is the structural check behind "unknown email
// and wrong password are indistinguishable in timing": whatever the
// account's state, an unthrottled attempt runs exactly one argon2id
// verification, with the same parameters.
func TestEveryPathCostsOneHash(t *testing.T) {
	e := newSigninEnv(t)
	owner := e.org("acme", "it@acme.com")
	e.user("acme", "invited@acme.com", false)
	bob := e.user("acme", "bob@acme.com", true)
	if _, err := e.st.UpdateUser("acme", bob.ID, func(u *store.User) error { u.Active = false; return nil }); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name, email, password string
		want                  Outcome
	}{
		{"unknown address", "nobody@acme.com", goodPassword, OutcomeBadCredentials},
		{"unknown domain", "x@elsewhere.test", "whatever", OutcomeBadCredentials},
		{"malformed address", "not an address", goodPassword, OutcomeBadCredentials},
		{"no password yet", "invited@acme.com", goodPassword, OutcomeBadCredentials},
		{"no password yet, empty attempt", "invited@acme.com", "", OutcomeBadCredentials},
		{"wrong password", "it@acme.com", "lantern paper harbor", OutcomeBadCredentials},
		{"deactivated, right password", "bob@acme.com", goodPassword, OutcomeDisabled},
		{"right password", " IT@Acme.com ", goodPassword, OutcomeSuccess},
	}
	for i, c := range cases {
		res := e.try(Attempt{Email: c.email, Password: c.password, SourceIP: "192.0.2." + string(rune('1'+i))})
		if res.Outcome != c.want {
			t.Errorf("%s: outcome %s, want %s", c.name, res.Outcome, c.want)
		}
	}
	// The dummy hash uses the hasher's parameters, so unknown accounts
	// cost what known ones do.
	dummy, err := e.auth.dummy.get(context.Background(), e.hasher)
	if err != nil {
		t.Fatal(err)
	}
	if e.hasher.NeedsRehash(dummy) {
		t.Error("the dummy hash has other parameters than real ones")
	}
	got, _ := e.st.GetUser("acme", owner.ID)
	if got.LastLogin.IsZero() {
		t.Error("success did not record LastLogin")
	}
}

func TestSSOEnforcement(t *testing.T) {
	e := newSigninEnv(t)
	owner := e.org("acme", "it@acme.com")
	e.verifyDomain("acme", "acme.com")
	e.user("acme", "carol@acme.com", true)
	e.user("acme", "contractor@gmail.example", true)

	try := func(email string, want Outcome, method string) {
		t.Helper()
		res := e.try(Attempt{Email: email, Password: goodPassword, SourceIP: "192.0.2.1"})
		if res.Outcome != want || res.Method != method {
			t.Errorf("%s: %s/%q, want %s/%q", email, res.Outcome, res.Method, want, method)
		}
	}
	// Inactive: everyone signs in with a password, as "password".
	try("it@acme.com", OutcomeSuccess, MethodPassword)
	try("carol@acme.com", OutcomeSuccess, MethodPassword)
	try("contractor@gmail.example", OutcomeSuccess, MethodPassword)

	// Active: only the backup login, as "backup".
	e.activate("acme")
	try("it@acme.com", OutcomeSuccess, MethodBackup)
	try("carol@acme.com", OutcomeUseSSO, "")
	try("contractor@gmail.example", OutcomeSSOOnly, "")
	// A wrong password says nothing about enforcement.
	if res := e.try(Attempt{Email: "carol@acme.com", Password: "nope nope nope", SourceIP: "192.0.2.1"}); res.Outcome != OutcomeBadCredentials {
		t.Errorf("wrong password of an SSO user: %s", res.Outcome)
	}

	// Moving the designation moves the exception.
	carol, _ := e.st.UserByUserName("acme", "carol@acme.com")
	if _, _, err := e.st.SetBackupLogin("acme", carol.ID, func(*store.User) error { return nil }); err != nil {
		t.Fatal(err)
	}
	try("carol@acme.com", OutcomeSuccess, MethodBackup)
	try("it@acme.com", OutcomeUseSSO, "")
	_ = owner
}

func TestCrossOrgAccounts(t *testing.T) {
	e := newSigninEnv(t)
	e.org("acme", "it@acme.com")
	e.verifyDomain("acme", "acme.com")
	e.org("evil", "boss@evil.example")
	// evil's admin created an account under acme's domain, before or
	// after acme verified it: it must never sign in.
	e.user("evil", "ceo@acme.com", true)
	res := e.try(Attempt{Email: "ceo@acme.com", Password: goodPassword, OrgHint: "evil", SourceIP: "192.0.2.1"})
	if res.Outcome != OutcomeForeignDomain {
		t.Errorf("account under another org's domain: %s", res.Outcome)
	}

	// One address, local accounts in two orgs: the link's org picks,
	// else the oldest.
	e.user("acme", "msp@provider.example", true)
	e.clock.advance(time.Second)
	time.Sleep(2 * time.Millisecond)
	second := e.user("evil", "msp@provider.example", false)
	e.setPassword(second, "another long passphrase")
	if res := e.try(Attempt{Email: "msp@provider.example", Password: goodPassword, SourceIP: "192.0.2.2"}); res.Outcome != OutcomeSuccess || res.Org.ID != "acme" {
		t.Errorf("no hint: %s in %v", res.Outcome, res.Org)
	}
	if res := e.try(Attempt{Email: "msp@provider.example", Password: "another long passphrase", OrgHint: "evil", SourceIP: "192.0.2.2"}); res.Outcome != OutcomeSuccess || res.Org.ID != "evil" {
		t.Errorf("hint evil: %s in %v", res.Outcome, res.Org)
	}
	// The hint selects an account; it never lends one org's password to
	// another's account.
	if res := e.try(Attempt{Email: "msp@provider.example", Password: goodPassword, OrgHint: "evil", SourceIP: "192.0.2.2"}); res.Outcome != OutcomeBadCredentials {
		t.Errorf("acme's password for evil's account: %s", res.Outcome)
	}
}

func TestThrottlingLocksAndLifts(t *testing.T) {
	e := newSigninEnv(t)
	e.org("acme", "it@acme.com")
	wrong := Attempt{Email: "it@acme.com", Password: "wrong wrong wrong", SourceIP: "198.51.100.1"}
	for range 2 {
		if res := e.try(wrong); res.Outcome != OutcomeBadCredentials || len(res.NewLocks) != 0 {
			t.Fatalf("free failure: %+v", res)
		}
	}
	res := e.try(wrong)
	if len(res.NewLocks) != 1 || res.NewLocks[0] != (Lock{ScopeAccount, time.Minute}) {
		t.Fatalf("third failure: locks %+v", res.NewLocks)
	}
	// Locked: even the right password is refused, without a hash, from
	// any source; the first refusal is marked for the audit trail.
	right := Attempt{Email: "it@acme.com", Password: goodPassword, SourceIP: "198.51.100.2"}
	res = e.try(right)
	if res.Outcome != OutcomeLocked || res.LockScope != ScopeAccount || res.RetryAfter != time.Minute || !res.FirstRefusal {
		t.Fatalf("while locked: %+v", res)
	}
	if res = e.try(right); res.FirstRefusal {
		t.Error("repeated refusal marked first")
	}
	// Unknown addresses lock the same way: a lock reveals no account.
	ghost := Attempt{Email: "ghost@acme.com", Password: "x", SourceIP: "198.51.100.3"}
	for range 3 {
		e.try(ghost)
	}
	if res := e.try(ghost); res.Outcome != OutcomeLocked || res.LockScope != ScopeAccount {
		t.Errorf("unknown address: %+v", res)
	}

	// A browser the owner used before is not locked out by the attack.
	trusted := right
	trusted.DeviceToken = e.deviceToken("acme", "it@acme.com")
	if res := e.try(trusted); res.Outcome != OutcomeSuccess || !res.TrustedDevice {
		t.Errorf("trusted device during the lock: %+v", res)
	}

	// The lock lifts by itself, and a success clears the account's record.
	e.clock.advance(time.Minute)
	if res := e.try(right); res.Outcome != OutcomeSuccess {
		t.Fatalf("after the lock: %+v", res)
	}
	if res := e.try(wrong); len(res.NewLocks) != 0 {
		t.Errorf("failures not reset by success: %+v", res.NewLocks)
	}
}

func TestSourceThrottle(t *testing.T) {
	e := newSigninEnv(t)
	e.org("acme", "it@acme.com")
	// One source spraying many addresses is stopped by the source lock,
	// although no single address failed often.
	var res Result
	for i := range 20 {
		res = e.try(Attempt{Email: "user" + string(rune('a'+i)) + "@acme.com", Password: "guess guess guess", SourceIP: "203.0.113.9"})
	}
	if len(res.NewLocks) != 1 || res.NewLocks[0].Scope != ScopeSource {
		t.Fatalf("20th failure: %+v", res.NewLocks)
	}
	if res := e.try(Attempt{Email: "it@acme.com", Password: goodPassword, SourceIP: "203.0.113.9"}); res.Outcome != OutcomeLocked || res.LockScope != ScopeSource {
		t.Errorf("locked source: %+v", res)
	}
	if res := e.try(Attempt{Email: "it@acme.com", Password: goodPassword, SourceIP: "203.0.113.10"}); res.Outcome != OutcomeSuccess {
		t.Errorf("other source: %+v", res)
	}
}

func TestRehashOnSignIn(t *testing.T) {
	e := newSigninEnv(t)
	owner := e.org("acme", "it@acme.com")
	stronger, err := NewArgon2id(Params{Time: 2, MemoryKiB: 8 * 1024, Threads: 1}, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	e.hasher.Argon2id = stronger
	if res := e.try(Attempt{Email: "it@acme.com", Password: goodPassword, SourceIP: "192.0.2.1"}); res.Outcome != OutcomeSuccess {
		t.Fatal(res.Outcome)
	}
	got, _ := e.st.GetUser("acme", owner.ID)
	if stronger.NeedsRehash(got.PasswordHash) {
		t.Error("hash not upgraded")
	}
	if ok, _ := stronger.Verify(context.Background(), got.PasswordHash, goodPassword); !ok {
		t.Error("upgraded hash does not verify")
	}
}

// gatedHasher is the real hasher whose verifications wait, once they have
// been let in and counted, until the test opens the gate: so a test can
// hold attempts in flight and see what is admitted meanwhile.
type gatedHasher struct {
	*countingHasher
	gate chan struct{}
}

func (g *gatedHasher) Verify(ctx context.Context, enc, pw string) (bool, error) {
	g.verifies.Add(1)
	<-g.gate
	return g.Argon2id.Verify(ctx, enc, pw)
}

// TestConcurrentGuessesGetOnlyFreeChecks: attempts sent at the same
// moment are counted when admitted, before their hash, so while the
// first Free are in flight every other attempt is refused unchecked, the
// right password too; the right password still gets in once the lock
// lifts.
func TestConcurrentGuessesGetOnlyFreeChecks(t *testing.T) {
	e := newSigninEnv(t) // Free: 3 per account, 20 per source
	e.org("acme", "it@acme.com")
	gated := &gatedHasher{countingHasher: e.hasher, gate: make(chan struct{})}
	e.auth.Hasher = gated
	// The dummy hash is made on first use; make it now, outside the gate.
	if _, err := e.auth.dummy.get(context.Background(), e.hasher.Argon2id); err != nil {
		t.Fatal(err)
	}

	const n = 30
	results := make(chan Result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			res, err := e.auth.Authenticate(context.Background(), Attempt{
				Email: "it@acme.com", Password: fmt.Sprint("guess number ", i), SourceIP: "198.51.100.7",
			})
			if err != nil {
				t.Error(err)
			}
			results <- res
		})
	}
	// Every attempt either waits in the hash or has been refused.
	refused := 0
	for refused+int(gated.verifies.Load()) < n {
		select {
		case res := <-results:
			if res.Outcome != OutcomeLocked || res.LockScope != ScopeAccount {
				t.Errorf("attempt answered while others are in flight: %+v", res)
			}
			refused++
		case <-time.After(10 * time.Millisecond):
		}
	}
	if got := gated.verifies.Load(); got != 3 {
		t.Fatalf("%d of %d concurrent attempts were let in to be checked, want the 3 free ones", got, n)
	}
	// The right password, while the three are still in flight.
	right := Attempt{Email: "it@acme.com", Password: goodPassword, SourceIP: "198.51.100.8"}
	if res := e.try(right); res.Outcome != OutcomeLocked {
		t.Fatalf("right password during the burst: %+v", res)
	}
	close(gated.gate)
	wg.Wait()
	close(results)
	failed := 0
	for res := range results {
		if res.Outcome == OutcomeBadCredentials {
			failed++
		}
	}
	if failed != 3 || refused != n-3 {
		t.Errorf("%d failed, %d refused; want 3 and %d", failed, refused, n-3)
	}
	if res := e.try(right); res.Outcome != OutcomeLocked {
		t.Fatalf("right password after the burst: %+v", res)
	}
	e.clock.advance(time.Minute)
	if res := e.try(right); res.Outcome != OutcomeSuccess {
		t.Fatalf("right password after the lock: %+v", res)
	}
}

// TestAttemptsInFlightPerSourceAreBounded: a source with the maximum of
// attempts in flight gets the next refused unchecked and uncounted, even
// for another account; other sources are unaffected.
func TestAttemptsInFlightPerSourceAreBounded(t *testing.T) {
	e := newSigninEnv(t)
	e.org("acme", "it@acme.com")
	gated := &gatedHasher{countingHasher: e.hasher, gate: make(chan struct{})}
	e.auth.Hasher = gated
	e.auth.InFlight = NewInFlight(2)
	if _, err := e.auth.dummy.get(context.Background(), e.hasher.Argon2id); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			_, _ = e.auth.Authenticate(context.Background(), Attempt{Email: fmt.Sprintf("u%d@acme.com", i), Password: "guess guess guess", SourceIP: "203.0.113.5"})
		})
	}
	for gated.verifies.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	res := e.try(Attempt{Email: "it@acme.com", Password: goodPassword, SourceIP: "203.0.113.5"})
	if res.Outcome != OutcomeBusy {
		t.Fatalf("third attempt in flight from one source: %+v", res)
	}
	close(gated.gate)
	wg.Wait()
	// Refused unchecked means not counted: the account has no failure.
	if v, err := e.auth.Accounts.Check("it@acme.com"); err != nil || v.Locked {
		t.Error("busy refusal locked the account")
	}
	if res := e.try(Attempt{Email: "it@acme.com", Password: goodPassword, SourceIP: "203.0.113.5"}); res.Outcome != OutcomeSuccess {
		t.Errorf("after the others ended: %+v", res)
	}
}

// TestHasherQueueFullIsOverloaded: when the hasher's queue is full an
// attempt is answered at once, unchecked and uncounted.
func TestHasherQueueFullIsOverloaded(t *testing.T) {
	e := newSigninEnv(t)
	e.org("acme", "it@acme.com")
	h, err := NewArgon2id(testParams, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	e.hasher.Argon2id = h
	h.admit <- struct{}{} // a hash running
	h.admit <- struct{}{} // and one waiting: the queue is full
	for range 5 {
		if res := e.try(Attempt{Email: "it@acme.com", Password: "guess guess guess", SourceIP: "203.0.113.6"}); res.Outcome != OutcomeOverloaded {
			t.Fatalf("full queue: %+v", res)
		}
	}
	<-h.admit
	<-h.admit
	if res := e.try(Attempt{Email: "it@acme.com", Password: goodPassword, SourceIP: "203.0.113.6"}); res.Outcome != OutcomeSuccess {
		t.Errorf("overloaded attempts were counted: %+v", res)
	}
}

// TestDeviceTrustEndsWithTheCredentials: a trusted-device token exempts
// its browser from the account lock until the account's password is reset
// (a link issued) or set again, or the token's lifetime ends; a token for
// one account lends nothing to another.
func TestDeviceTrustEndsWithTheCredentials(t *testing.T) {
	e := newSigninEnv(t)
	owner := e.org("acme", "it@acme.com")
	e.user("acme", "other@acme.com", true)
	lock := func(email string) {
		for range 3 {
			e.try(Attempt{Email: email, Password: "wrong wrong wrong", SourceIP: "198.51.100.20"})
		}
	}
	right := Attempt{Email: "it@acme.com", Password: goodPassword, SourceIP: "198.51.100.21"}

	tok := e.deviceToken("acme", "it@acme.com")
	lock("it@acme.com")
	at := right
	at.DeviceToken = tok
	if res := e.try(at); res.Outcome != OutcomeSuccess || !res.TrustedDevice {
		t.Fatalf("trusted device during the lock: %+v", res)
	}
	// Another account's lock is not lifted by this account's token.
	lock("other@acme.com")
	if res := e.try(Attempt{Email: "other@acme.com", Password: goodPassword, SourceIP: "198.51.100.21", DeviceToken: tok}); res.Outcome != OutcomeLocked || res.TrustedDevice {
		t.Errorf("token of another account: %+v", res)
	}

	// The operator resets the backup login: a new link changes the
	// account's credential version, and the old token stops counting.
	_, hash, _ := NewLinkToken()
	if err := e.st.IssueInvitation(&store.Invitation{TokenHash: hash, OrgID: "acme", UserID: owner.ID, Purpose: store.InviteReset, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	lock("it@acme.com")
	if res := e.try(at); res.Outcome != OutcomeLocked || res.TrustedDevice {
		t.Fatalf("old device token after a reset: %+v", res)
	}
	// Using the link changes it again; a token issued after that works.
	pwHash, err := e.hasher.Argon2id.Hash(context.Background(), goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.st.RedeemInvitation(hash, pwHash); err != nil {
		t.Fatal(err)
	}
	fresh := e.deviceToken("acme", "it@acme.com")
	at.DeviceToken = fresh
	if res := e.try(at); res.Outcome != OutcomeSuccess || !res.TrustedDevice {
		t.Fatalf("fresh token: %+v", res)
	}
	// The server ends the token's trust after its lifetime.
	lock("it@acme.com")
	e.clock.advance(DeviceTokenLifetime)
	lock("it@acme.com") // the clock moved: the earlier lock lapsed, lock again
	if res := e.try(at); res.Outcome != OutcomeLocked || res.TrustedDevice {
		t.Errorf("token after its lifetime: %+v", res)
	}
}

// TestThrottleStoreFailureFailsClosed: when a throttle cannot count (its
// store is gone), an attempt is not checked at all, even with the right
// password: no uncounted guesses while the store is down.
func TestThrottleStoreFailureFailsClosed(t *testing.T) {
	broken, err := store.Open(t.TempDir(), store.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := broken.Close(); err != nil {
		t.Fatal(err)
	}
	for _, scope := range []string{ScopeSource, ScopeAccount} {
		e := newSigninEnv(t)
		e.org("acme", "owner@acme.com")
		cfg := ThrottleConfig{Now: e.clock.now}
		switch scope {
		case ScopeSource:
			e.auth.Sources = NewThrottle(broken, scope, cfg)
		case ScopeAccount:
			e.auth.Accounts = NewThrottle(broken, scope, cfg)
		}
		before := e.hasher.verifies.Load()
		res, err := e.auth.Authenticate(context.Background(), Attempt{Email: "owner@acme.com", Password: goodPassword, SourceIP: "192.0.2.1"})
		if err == nil || res.Outcome == OutcomeSuccess {
			t.Errorf("%s throttle down: outcome %q, error %v", scope, res.Outcome, err)
		}
		if n := e.hasher.verifies.Load() - before; n != 0 {
			t.Errorf("%s throttle down: %d passwords checked", scope, n)
		}
	}
}

// TestAttemptRefusedWhenThrottleBusy: when the store has as many throttle
// transactions under way (and waiting) as it allows, an attempt is
// refused at once as overloaded, without a password check, instead of
// waiting for the database or going uncounted.
func TestAttemptRefusedWhenThrottleBusy(t *testing.T) {
	hold := make(chan struct{})
	var holding atomic.Bool
	holding.Store(true)
	// A reservation's write is observed before its transaction slot is
	// released: blocking here keeps it in flight, as a slow database would.
	st, err := store.Open(t.TempDir(), store.Options{GCInterval: -1, ThrottleTxns: 1, ObserveWrite: func(op string, _ time.Duration) {
		if op == "reserve throttle" && holding.Load() {
			<-hold
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	c := newClock()
	h := &countingHasher{Argon2id: newTestHasher(t)}
	cfg := ThrottleConfig{Free: 3, Base: time.Minute, Max: time.Hour, Now: c.now}
	auth := &Authenticator{Store: st, Hasher: h,
		Accounts: NewThrottle(st, ScopeAccount, cfg), Devices: NewThrottle(st, ScopeDevice, cfg), Sources: NewThrottle(st, ScopeSource, cfg)}
	// One slot and a short queue behind it (16 places): so many attempts
	// at once cannot all be admitted, and the others wait for the held
	// transaction.
	const n = 64
	results := make(chan Result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			res, err := auth.Authenticate(context.Background(), Attempt{Email: fmt.Sprintf("u%d@example.com", i), Password: "guess", SourceIP: fmt.Sprint("192.0.2.", i)})
			if err != nil {
				t.Error(err)
			}
			results <- res
		})
	}
	first := <-results
	if first.Outcome != OutcomeOverloaded || h.verifies.Load() != 0 {
		t.Fatalf("first answer while every slot was held: %s after %d password checks", first.Outcome, h.verifies.Load())
	}
	holding.Store(false)
	close(hold)
	wg.Wait()
	close(results)
	checked := 0
	for res := range results {
		switch res.Outcome {
		case OutcomeBadCredentials:
			checked++
		case OutcomeOverloaded:
		default:
			t.Errorf("outcome %s", res.Outcome)
		}
	}
	if n := h.verifies.Load(); int(n) != checked {
		t.Errorf("%d password checks for %d checked attempts: a refused attempt was checked", n, checked)
	}
	if checked == 0 {
		t.Error("no attempt was served once the slot was free")
	}
}
