package caddymodule_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// End-to-end tests of the password paths against attackers who send many
// attempts at once (issue 15): each attempt is counted before its hash,
// so a burst gets no more checks than a sequence.

// rawPost sends a form from a goroutine other than the test's, so it
// reports failures instead of stopping the test.
func (b *browser) rawPost(u string, form url.Values) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// checksAllowedWithin is how many attempts on one account the throttle
// may let be checked within d of the first: the 5 free ones, and one more
// each time a lock lapsed (1 s, then 2 s, 4 s, ...). A bound that holds
// however slow the machine is, not a timing assertion.
func checksAllowedWithin(d time.Duration) int {
	n, lapsed := 5, time.Duration(0)
	for lock := time.Second; lapsed+lock <= d; lock *= 2 {
		lapsed += lock
		n++
	}
	return n
}

// TestConcurrentGuessesAreThrottled: 40 wrong passwords posted at the same
// moment to /sso/backup, each from its own browser (own CSRF cookie),
// get only the free checks; the rest are refused unchecked with 429, and
// so is the right password while the account is locked.
func TestConcurrentGuessesAreThrottled(t *testing.T) {
	// Cheap hashes, one at a time (so attempts queue and overlap), and no
	// per-source bound in the way: this is about the account's throttle.
	reloadWithSSO(t, map[string]any{"password_hashing": map[string]any{
		"time": 1, "memory_kib": 8192, "threads": 1, "max_concurrent": 1, "max_per_source": 100,
	}})
	const owner = "owner@lcl-burst.test"
	org := uniqueOrg("lcl-burst")
	link := newLocalOrg(t, org, owner, "")
	if p := newBrowserFrom(t, "127.0.0.23").setPassword(link, strongPassword); p.status != http.StatusOK {
		t.Fatalf("set password: %d", p.status)
	}

	const n = 40
	type shot struct {
		b    *browser
		form url.Values
	}
	shots := make([]shot, n+1)
	for i := range shots {
		b := newBrowserFrom(t, "127.0.0.24")
		f := formByAction(t, b.get(env.GatewayURL+"/sso/backup").body, "/sso/backup")
		f.Set("email", owner)
		f.Set("password", "wrong guess "+strings.Repeat("x", i))
		shots[i] = shot{b, f}
	}
	right := shots[n]
	right.form.Set("password", strongPassword)

	statuses := make([]int, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			statuses[i], _, errs[i] = shots[i].b.rawPost(env.GatewayURL+"/sso/backup", shots[i].form)
		})
	}
	began := time.Now()
	close(start)
	wg.Wait()
	status, body, err := right.b.rawPost(env.GatewayURL+"/sso/backup", right.form)
	elapsed := time.Since(began)

	checked, refused := 0, 0
	for i, s := range statuses {
		switch {
		case errs[i] != nil:
			t.Errorf("attempt %d: %v", i, errs[i])
		case s == http.StatusUnauthorized:
			checked++
		case s == http.StatusTooManyRequests:
			refused++
		default:
			t.Errorf("attempt %d: status %d", i, s)
		}
	}
	if allowed := checksAllowedWithin(elapsed); checked > allowed || checked < 5 {
		t.Errorf("%d of %d concurrent wrong passwords were checked (%d refused) in %v; the throttle allows %d",
			checked, n, refused, elapsed, allowed)
	}
	if err != nil {
		t.Fatal(err)
	}
	// The first lock (1 s) started within the burst; while it cannot have
	// lapsed, the right password must be refused too.
	if elapsed < time.Second && (status != http.StatusTooManyRequests || !strings.Contains(body, "Too many")) {
		t.Errorf("right password during the lock: %d", status)
	}
	if elapsed >= time.Second {
		t.Logf("the burst took %v: the lock may have lapsed, so the right password's answer (%d) is not checked", elapsed, status)
	}
}

// TestDeviceCookieLosesTrustOnReset: the browser that set the backup
// login's password is trusted for it (a locked account does not lock it
// out) until the operator resets the backup login; from then on its old
// device cookie counts for nothing, and it is locked out like any other
// browser until it uses the new link.
func TestDeviceCookieLosesTrustOnReset(t *testing.T) {
	reloadWithSSO(t, map[string]any{"password_hashing": map[string]any{"time": 1, "memory_kib": 8192, "threads": 1}})
	const owner = "owner@lcl-devreset.test"
	org := uniqueOrg("lcl-devreset")
	link := newLocalOrg(t, org, owner, "")
	trusted := newBrowserFrom(t, "127.0.0.26")
	if p := trusted.setPassword(link, strongPassword); p.status != http.StatusOK {
		t.Fatalf("set password: %d", p.status)
	}
	attacker := newBrowserFrom(t, "127.0.0.27")
	// lockAndTry locks the account with n failures, then posts the right
	// password from the trusted browser (its form fetched first, so that
	// only one request lies between the lock and the attempt). ok is false
	// if the lock (lasting at least d) may have lapsed in between.
	lockAndTry := func(n int, d time.Duration) (status int, ok bool) {
		form := formByAction(t, trusted.get(env.GatewayURL+"/sso/backup").body, "/sso/backup")
		form.Set("email", owner)
		form.Set("password", strongPassword)
		for i := range n {
			if p := attacker.backupSignIn(owner, strings.Repeat("wrong ", i+3), ""); p.status != http.StatusUnauthorized {
				t.Fatalf("failure %d: %d", i+1, p.status)
			}
		}
		locked := time.Now()
		p := trusted.post(env.GatewayURL+"/sso/backup", form)
		return p.status, time.Since(locked) < d
	}

	if status, _ := lockAndTry(5, time.Second); status != http.StatusSeeOther {
		t.Fatalf("trusted browser during the lock: %d", status)
	}
	// The operator resets the backup login.
	fresh := adminJSON(t, http.MethodPost, "/orgs/"+org+"/backup-login/reset", nil)["set_password_url"].(string)
	// A trusted sign-in does not clear the account's failures: once the
	// lock lapses, one more failure locks it again, for 2 s.
	time.Sleep(1100 * time.Millisecond)
	status, inLock := lockAndTry(1, 2*time.Second)
	switch {
	case status == http.StatusTooManyRequests:
	case !inLock:
		t.Logf("the lock may have lapsed before the attempt (%d): slow machine, not checked", status)
	default:
		t.Fatalf("old device cookie after a reset: %d, want 429", status)
	}
	// Using the new link trusts the browser again.
	if p := trusted.setPassword(fresh, "a new long passphrase 7"); p.status != http.StatusOK {
		t.Fatalf("new link: %d", p.status)
	}
	form := formByAction(t, trusted.get(env.GatewayURL+"/sso/backup").body, "/sso/backup")
	form.Set("email", owner)
	form.Set("password", "a new long passphrase 7")
	if p := trusted.post(env.GatewayURL+"/sso/backup", form); p.status != http.StatusSeeOther {
		t.Errorf("after the new link: %d", p.status)
	}
}

// TestSetPasswordRefusesTheOrgsName: the set-password form refuses a
// password made from the organization's ID or name, in any ASCII case,
// and keeps the link usable.
func TestSetPasswordRefusesTheOrgsName(t *testing.T) {
	reloadWithSSO(t, map[string]any{"password_hashing": map[string]any{"time": 1, "memory_kib": 8192, "threads": 1}})
	org := uniqueOrg("lcl-pwname")
	link := newLocalOrg(t, org, "owner@pw-e2e.test", "") // named "Org <id>"
	b := newBrowserFrom(t, "127.0.0.28")
	for _, pw := range []string{strings.ToUpper(org) + "!", "org " + org + " 2026", "Lcl-PwName-Lcl-PwName"} {
		if p := b.setPassword(link, pw); p.status != http.StatusBadRequest || !strings.Contains(p.body, "organization") {
			t.Errorf("%q: %d", pw, p.status)
		}
	}
	if p := b.setPassword(link, strongPassword); p.status != http.StatusOK {
		t.Errorf("a good password after the refusals: %d", p.status)
	}
}

// TestPasswordHashingBounds: beyond the queue (max_queued) a sign-in is
// answered 503 at once, beyond max_per_source attempts in flight from one
// address 429 at once, both with Retry-After and without a hash. The
// attempts are released together and each hash takes a 64 MiB argon2id
// pass, so they overlap.
func TestPasswordHashingBounds(t *testing.T) {
	burst := func(ip string, n int) map[int]int {
		t.Helper()
		forms := make([]url.Values, n)
		browsers := make([]*browser, n)
		for i := range n {
			browsers[i] = newBrowserFrom(t, ip)
			// Two 64 MiB argon2id passes in a row may take more than the
			// usual 10 s on a loaded machine; this test is about answers,
			// not speed.
			browsers[i].client.Timeout = 2 * time.Minute
			forms[i] = formByAction(t, browsers[i].get(env.GatewayURL+"/sso/backup").body, "/sso/backup")
			forms[i].Set("email", fmt.Sprintf("%s-%d@lcl-bounds.test", uniqueOrg("u"), i)) // one account each
			forms[i].Set("password", "guess guess guess")
		}
		count := map[int]int{}
		var mu sync.Mutex
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				req, _ := http.NewRequest(http.MethodPost, env.GatewayURL+"/sso/backup", strings.NewReader(forms[i].Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				resp, err := browsers[i].client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized && resp.Header.Get("Retry-After") == "" {
					t.Errorf("%d without Retry-After", resp.StatusCode)
				}
				mu.Lock()
				count[resp.StatusCode]++
				mu.Unlock()
			})
		}
		close(start)
		wg.Wait()
		return count
	}

	reloadWithSSO(t, map[string]any{"password_hashing": map[string]any{
		"time": 3, "memory_kib": 65536, "threads": 1, "max_concurrent": 1, "max_queued": 1, "max_per_source": 100,
	}})
	got := burst("127.0.0.29", 10)
	if got[http.StatusServiceUnavailable] == 0 || got[http.StatusUnauthorized]+got[http.StatusServiceUnavailable] != 10 {
		t.Errorf("queue bound 1+1, 10 at once: %v", got)
	}

	reloadWithSSO(t, map[string]any{"password_hashing": map[string]any{
		"time": 3, "memory_kib": 65536, "threads": 1, "max_concurrent": 1, "max_per_source": 1,
	}})
	got = burst("127.0.0.30", 6)
	if got[http.StatusTooManyRequests] == 0 || got[http.StatusUnauthorized]+got[http.StatusTooManyRequests] != 6 {
		t.Errorf("one in flight per source, 6 at once: %v", got)
	}
}
