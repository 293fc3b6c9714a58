//go:build unix

package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssogate/ssogate/examples/demo"
	"github.com/ssogate/ssogate/store/pgtest"
)

// Issue 12: several gateway replicas on one PostgreSQL database. Each test
// runs two real ssogate processes (see replicas_env_test.go) and skips
// without PostgreSQL, unless SSOGATE_POSTGRES_TESTS=required (CI).

// A session made on one replica is good on the other, and each revocation
// taken by one replica (SCIM deactivation, logout, org deactivation,
// removal from the admin group) ends it on the next request there and on
// the other replica within a second, though that one had the session's
// re-check in its cache: only the published change can have told it.
func TestReplicasShareSessionsAndRevocations(t *testing.T) {
	dsn, schema := pgtest.Schema(t)
	e := startReplicas(t, dsn, schema)
	onA, onB := e.scimOn(e.a), e.scimOn(e.b)
	var delays []time.Duration

	// 1. Sign in through A, browse through B (and through the balancer,
	// which alternates).
	b := e.newBrowser()
	b.requireRefused("b")
	b.signIn("a", "a")
	b.requireAlice("b")
	b.requireAlice("")
	b.requireAlice("")

	// 2. SCIM deactivation through B: refused at once on B, which took
	// the write, and within the bound on A.
	alice := aliceID(t, onB)
	b.warm(e.a)
	setActive(t, onB, alice, false)
	at := time.Now()
	b.requireRefused("b")
	delays = append(delays, b.revocationDelay(e.a, at, "SCIM deactivation through B"))
	// The session is gone for good: reactivation does not revive it.
	setActive(t, onA, alice, true)
	b.requireRefused("a")
	b.requireRefused("b")

	// 3a. Logout through A ends the session on B.
	b = e.newBrowser()
	b.signIn("b", "a")
	b.requireAlice("a")
	b.warm(e.b)
	saved := b.client.Jar.Cookies(mustURL(t, e.baseURL))
	p := b.must("a", http.MethodPost, e.baseURL+"/sso/logout", nil)
	if p.status != http.StatusOK || !strings.Contains(p.body, "signed out") {
		t.Fatalf("logout through A: %d\n%s", p.status, p.body)
	}
	at = time.Now()
	// The browser's cookie is cleared by the logout; a copy kept from
	// before it is what an attacker or a second tab would hold.
	stale := e.newBrowser()
	stale.client.Jar.SetCookies(mustURL(t, e.baseURL), saved)
	delays = append(delays, stale.revocationDelay(e.b, at, "logout through A"))
	stale.requireRefused("a")

	// 3b. Org deactivation through B's admin API ends access on A.
	b = e.newBrowser()
	b.signIn("a", "b")
	b.warm(e.a)
	e.b.admin(t, http.MethodPost, "/sso/orgs/"+demo.OrgID+"/deactivate", nil)
	at = time.Now()
	delays = append(delays, b.revocationDelay(e.a, at, "org deactivation through B"))
	b.requireRefused("b")
	e.a.admin(t, http.MethodPost, "/sso/orgs/"+demo.OrgID+"/activate", nil)
	b = e.newBrowser()
	b.signIn("b", "a")
	b.requireAlice("a")
	b.requireAlice("b")

	// A rolling restart signs nobody out: B stops cleanly while A
	// serves, and B comes back with the same sessions.
	b = e.newBrowser()
	b.signIn("b", "b")
	e.b.stop(t)
	b.requireAlice("a")
	if err := e.b.start(); err != nil {
		t.Fatal(err)
	}
	b.requireAlice("b")
	if n := strings.Count(readFile(e.b.logs[0]), `"msg":"closed store"`); n != 1 {
		t.Errorf("replica b, stopped through its admin API, closed its store %d times, want 1", n)
	}

	// 3c. Once SCIM has pushed the mapped admin group (through A), its
	// membership decides; removal from it through B ends access on A.
	g := scimMust(t, onA, http.StatusCreated, http.MethodPost, "/Groups", map[string]any{
		"schemas":     []string{"urn:ietf:params:scim:schemas:core:2.0:Group"},
		"externalId":  demo.AdminGroupID,
		"displayName": demo.AdminGroupName,
		"members":     []any{map[string]any{"value": alice}},
	})
	gid, _ := g["id"].(string)
	b.warm(e.a)
	scimMust(t, onB, http.StatusOK, http.MethodPatch, "/Groups/"+gid, map[string]any{
		"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
		"Operations": []any{map[string]any{"op": "remove", "path": `members[value eq "` + alice + `"]`}},
	})
	at = time.Now()
	b.requireRefused("b")
	delays = append(delays, b.revocationDelay(e.a, at, "removal from the admin group through B"))

	sort.Slice(delays, func(i, j int) bool { return delays[i] < delays[j] })
	t.Logf("revocation delays on the other replica: %v (bound %v)", delays, revocationBound)
	e.a.checkLogs(t, true)
	e.b.checkLogs(t, true)
}

// One SAML response posted to A and B at the same moment signs in once:
// one ACS answers 303 to the app, the other refuses it. Both for a
// response to a request the browser started (posted twice by that
// browser: the request is used up once) and for an IdP-initiated one
// (posted by two browsers, as a captured response would be: only the
// shared replay cache can stop the second).
func TestReplicasAcceptAResponseOnce(t *testing.T) {
	dsn, schema := pgtest.Schema(t)
	e := startReplicas(t, dsn, schema)
	signIns := func() float64 {
		return e.a.metric(t, "ssogate_signins_total", "outcome", "success") +
			e.b.metric(t, "ssogate_signins_total", "outcome", "success")
	}
	before := signIns()
	const rounds = 4
	race := func(what string, browsers [2]*replicaBrowser, acsURL string, form url.Values) {
		t.Helper()
		var (
			wg    sync.WaitGroup
			pages [2]replicaPage
			errs  [2]error
			start = make(chan struct{})
		)
		for i, r := range []string{"a", "b"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				pages[i], errs[i] = browsers[i].send(r, http.MethodPost, acsURL, form, "text/html")
			}()
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, r := range []string{"a", "b"} {
			switch {
			case errs[i] != nil:
				t.Fatalf("%s: ACS on %s: %v", what, r, errs[i])
			case pages[i].status == http.StatusSeeOther:
				if winner >= 0 {
					t.Fatalf("%s: accepted by both replicas", what)
				}
				winner = i
			case pages[i].status < 400 || pages[i].status >= 500 || !strings.Contains(pages[i].body, "Sign-in failed"):
				t.Errorf("%s: ACS on %s: want 303 or the sign-in refusal page, got %d\n%s", what, r, pages[i].status, pages[i].body)
			}
		}
		if winner < 0 {
			t.Fatalf("%s: refused by both replicas (%d, %d)", what, pages[0].status, pages[1].status)
		}
		t.Logf("%s: A answered %d, B answered %d %s", what, pages[0].status, pages[1].status, refusalText(pages[1-winner].body))
		browsers[winner].requireAlice("a")
		browsers[winner].requireAlice("b")
		if loser := browsers[1-winner]; loser != browsers[winner] {
			loser.requireRefused("a")
			loser.requireRefused("b")
		}
	}

	for round := range rounds {
		b := e.newBrowser()
		start := []string{"a", "b"}[round%2]
		acsURL, form, err := e.idp.Respond(b.startLogin(start), demo.AliceEmail, nil)
		if err != nil {
			t.Fatal(err)
		}
		race(fmt.Sprintf("response to a request started on %s, round %d", start, round), [2]*replicaBrowser{b, b}, acsURL, form)
	}

	e.a.admin(t, http.MethodPatch, "/sso/orgs/"+demo.OrgID, map[string]any{"allow_idp_initiated": true})
	for round := range rounds {
		acsURL, form, err := e.idp.Unsolicited(demo.OrgID, demo.AliceEmail, nil)
		if err != nil {
			t.Fatal(err)
		}
		race(fmt.Sprintf("IdP-initiated response, round %d", round), [2]*replicaBrowser{e.newBrowser(), e.newBrowser()}, acsURL, form)
	}

	if got := signIns() - before; got != 2*rounds {
		t.Errorf("%v successful sign-ins counted by A and B, want %d", got, 2*rounds)
	}
	e.a.checkLogs(t, true)
	e.b.checkLogs(t, true)
}

// kill -9 of A while an IdP streams user creations into it loses none
// that A acknowledged: B finds every one, and B serves throughout.
func TestReplicasKillUnderLoadLosesNoAcknowledgedWrite(t *testing.T) {
	dsn, schema := pgtest.Schema(t)
	e := startReplicas(t, dsn, schema)
	onA, onB := e.scimOn(e.a), e.scimOn(e.b)
	b := e.newBrowser()
	b.signIn("b", "b")

	// B is watched from before the load until the end of the checks: the
	// session is let through, SCIM reads answer and SCIM writes are
	// acknowledged (renames of a user of B's own), on every request.
	mine := &userRecord{userName: "watch@" + demo.Domain, externalID: "ext-watch"}
	mineID, _ := scimMust(t, onB, http.StatusCreated, http.MethodPost, "/Users", userBody(mine, "v0"))["id"].(string)
	model := &userModel{others: countUsers(t, onB)}
	watchStop, watchDone := make(chan struct{}), make(chan string, 1)
	watched := 0
	go func() {
		for seq := 0; ; seq++ {
			select {
			case <-watchStop:
				watchDone <- ""
				return
			default:
			}
			status, email, err := b.whoami("b")
			if err != nil || status != http.StatusOK || email != demo.AliceEmail {
				watchDone <- fmt.Sprintf("B during the crash of A: session: %d %q %v", status, email, err)
				return
			}
			status, out, err := onB.do(context.Background(), http.MethodGet, "/Users?count=1", nil)
			if err != nil || status != http.StatusOK {
				watchDone <- fmt.Sprintf("B during the crash of A: SCIM read: %d %v %v", status, out, err)
				return
			}
			name := fmt.Sprintf("s%d", seq)
			status, out, err = onB.do(context.Background(), http.MethodPut, "/Users/"+mineID, userBody(mine, name))
			if err != nil || status != http.StatusOK || out["displayName"] != name {
				watchDone <- fmt.Sprintf("B during the crash of A: SCIM write: %d %v %v", status, out, err)
				return
			}
			watched++
			time.Sleep(10 * time.Millisecond)
		}
	}()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu     sync.Mutex
		acked  int
		armed  = make(chan struct{})
		failed = make(chan string, workers)
		wg     sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; ; seq++ {
				n := fmt.Sprintf("kill-w%dn%d", w, seq)
				r := &userRecord{worker: w, userName: n + "@" + demo.Domain, externalID: "ext-" + n, createInFlight: true}
				model.add(r)
				status, out, err := onA.do(ctx, http.MethodPost, "/Users", userBody(r, "v0"))
				if err != nil {
					return // A is gone: this create's fate is checked below
				}
				id, _ := out["id"].(string)
				if status != http.StatusCreated || id == "" {
					failed <- fmt.Sprintf("create %s on A: %d %v", r.userName, status, out)
					return
				}
				model.mu.Lock()
				r.id, r.acked, r.createInFlight = id, "v0", false
				model.mu.Unlock()
				mu.Lock()
				if acked++; acked == ackedBeforeKill {
					close(armed)
				}
				mu.Unlock()
			}
		}()
	}
	select {
	case <-armed:
		// The kill lands between, during and after commits alike.
		time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
	case msg := <-failed:
		t.Error(msg)
	case <-time.After(time.Minute):
		t.Error("too few creations acknowledged by A in a minute")
	}
	e.a.kill(t)
	wg.Wait()
	close(failed)
	for msg := range failed {
		t.Error(msg)
	}
	mu.Lock()
	t.Logf("A acknowledged %d creations before SIGKILL", acked)
	mu.Unlock()

	// Everything A acknowledged, read through B; a create cut off by the
	// kill is there whole or not at all.
	mu.Lock()
	n := acked
	mu.Unlock()
	want := checkCreates(t, onB, model, n, "read through B after A's kill")

	close(watchStop)
	if msg := <-watchDone; msg != "" {
		t.Error(msg)
	}
	t.Logf("B answered %d rounds of session check, SCIM read and SCIM write while A was killed and its writes verified", watched)

	// A comes back on the same database and serves the same session.
	if err := e.a.start(); err != nil {
		t.Fatal(err)
	}
	b.requireAlice("a")
	if got := countUsers(t, e.scimOn(e.a)); got != want {
		t.Errorf("restarted A counts %d users, want %d", got, want)
	}
	e.a.checkLogs(t, true)
	e.b.checkLogs(t, true)
}

// A restart of PostgreSQL under running replicas: meanwhile nothing is
// let through that was not checked (an error, never a panic), afterwards
// both serve again without a restart of their own, and the change
// notifications are back (a deactivation through B reaches A, which had
// the session cached, within the bound).
func TestReplicasSurvivePostgresRestart(t *testing.T) {
	srv := pgtest.StartServer(t)
	e := startReplicas(t, srv.DSN(), "ssogate")
	onA, onB := e.scimOn(e.a), e.scimOn(e.b)
	b := e.newBrowser()
	b.signIn("a", "b")
	b.requireAlice("a")
	b.requireAlice("b")

	// A restart shorter than the store's retry budget while an IdP
	// streams creations into both replicas: each request is held, then
	// answered (201, or an error for a commit the restart cut off), and
	// no acknowledged creation is lost.
	model := &userModel{others: countUsers(t, onA)}
	var (
		mu       sync.Mutex
		acked    int
		cutOff   int
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		problems = make(chan string, workers)
	)
	ackedNow := func() int {
		mu.Lock()
		defer mu.Unlock()
		return acked
	}
	for w := range workers {
		c := e.scimOn([]*replica{e.a, e.b}[w%2])
		c.client.Timeout = outageBound
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				n := fmt.Sprintf("restart-w%dn%d", w, seq)
				r := &userRecord{worker: w, userName: n + "@" + demo.Domain, externalID: "ext-" + n, createInFlight: true}
				model.add(r)
				status, out, err := c.do(context.Background(), http.MethodPost, "/Users", userBody(r, "v0"))
				id, _ := out["id"].(string)
				switch {
				case err != nil:
					problems <- fmt.Sprintf("create %s during the restart: %v", r.userName, err)
					return
				case status == http.StatusCreated && id != "":
					model.mu.Lock()
					r.id, r.acked, r.createInFlight = id, "v0", false
					model.mu.Unlock()
					mu.Lock()
					acked++
					mu.Unlock()
				case status >= 500:
					mu.Lock()
					cutOff++
					mu.Unlock()
				default:
					problems <- fmt.Sprintf("create %s during the restart: %d %v", r.userName, status, out)
					return
				}
			}
		}()
	}
	waitAcked := func(n int, what string) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for ackedNow() < n {
			select {
			case msg := <-problems:
				t.Fatal(msg)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d creations acknowledged in a minute, want %d", what, ackedNow(), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitAcked(20, "before the restart")
	restartAt := time.Now()
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	restartTook := time.Since(restartAt)
	waitAcked(ackedNow()+20, "after the restart")
	close(stop)
	wg.Wait()
	close(problems)
	for msg := range problems {
		t.Error(msg)
	}
	t.Logf("database restart took %v under the stream: %d creations acknowledged, %d answered with an error", restartTook.Round(time.Millisecond), acked, cutOff)
	want := checkCreates(t, onB, model, acked, "read through B after the restart")
	if got := countUsers(t, onA); got != want {
		t.Errorf("A counts %d users after the restart, B %d", got, want)
	}
	b.requireAlice("a")
	b.requireAlice("b")

	// A longer outage: past the retry budget, requests fail closed.
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	// Every kind of request on both replicas at once, for the test's
	// time: the store retries a lost connection for a while before it
	// gives up, so each of them is held that long.
	type answer struct {
		what   string
		status int
		took   time.Duration
		err    error
		note   string
	}
	var (
		held    sync.WaitGroup
		answers = make(chan answer, 6)
	)
	for _, r := range []*replica{e.a, e.b} {
		held.Add(3)
		// Alice's session: a replica drops its re-check cache once its
		// notification connection is lost, and until then may still
		// reuse the outcome of a check made before the outage, during
		// which nothing can change. Then it must refuse.
		go func() {
			defer held.Done()
			for {
				sent := time.Now()
				status, email, err := b.whoami(r.name)
				if err != nil || status != http.StatusOK || email != demo.AliceEmail || time.Since(stopped) > outageBound {
					answers <- answer{"session on " + r.name, status, time.Since(sent), err, email}
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		go func() {
			defer held.Done()
			sent := time.Now()
			p, err := e.newBrowser().send(r.name, http.MethodPost, e.baseURL+"/sso/login", url.Values{"email": {demo.AliceEmail}}, "text/html")
			answers <- answer{"sign-in start on " + r.name, p.status, time.Since(sent), err, p.location}
		}()
		go func() {
			defer held.Done()
			sent := time.Now()
			c := e.scimOn(r)
			c.client.Timeout = outageBound
			status, _, err := c.do(context.Background(), http.MethodGet, "/Users?count=1", nil)
			answers <- answer{"SCIM on " + r.name, status, time.Since(sent), err, ""}
		}()
	}
	held.Wait()
	close(answers)
	for a := range answers {
		t.Logf("during the outage: %s: %d after %v %v", a.what, a.status, a.took.Round(time.Millisecond), a.note)
		switch {
		case a.err != nil:
			t.Errorf("during the outage: %s: %v", a.what, a.err)
		case a.status/100 == 2:
			t.Errorf("during the outage: %s let through (%d %s)", a.what, a.status, a.note)
		case strings.HasPrefix(a.what, "sign-in") && a.status < 500:
			t.Errorf("during the outage: %s: want an error page, got %d %s", a.what, a.status, a.note)
		case strings.HasPrefix(a.what, "session") && a.status != http.StatusServiceUnavailable:
			// Not 401: an outage is no verdict on the session, which
			// must still work once the database is back (checked below).
			t.Errorf("during the outage: %s: want 503 (temporarily unavailable), got %d %s", a.what, a.status, a.note)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	// Operators see it: the change listener is down on both.
	for _, r := range []*replica{e.a, e.b} {
		if v := r.metric(t, "ssogate_store_changes_live"); v != 0 {
			t.Errorf("replica %s: ssogate_store_changes_live = %v during the outage, want 0", r.name, v)
		}
	}

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	for _, r := range []*replica{e.a, e.b} {
		for {
			status, email, err := b.whoami(r.name)
			if err == nil && status == http.StatusOK && email == demo.AliceEmail {
				break
			}
			if time.Since(restarted) > time.Minute {
				t.Fatalf("replica %s does not serve the session a minute after the database came back: %d %q %v", r.name, status, email, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("both replicas serve again %v after the database came back", time.Since(restarted).Round(time.Millisecond))
	for _, r := range []*replica{e.a, e.b} {
		for r.metric(t, "ssogate_store_changes_live") != 1 {
			if time.Since(restarted) > time.Minute {
				t.Fatalf("replica %s: ssogate_store_changes_live not back to 1 a minute after the database came back", r.name)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// Writes work again on both, and the notifications are back: A
	// serves from its cache (warm), then learns of B's write.
	before := countUsers(t, onA)
	r := &userRecord{userName: "after-restart@" + demo.Domain, externalID: "ext-after-restart"}
	if status, out, err := onA.do(context.Background(), http.MethodPost, "/Users", userBody(r, "v0")); err != nil || status != http.StatusCreated {
		t.Fatalf("SCIM create through A after the restart: %d %v %v", status, out, err)
	}
	if got := countUsers(t, onB); got != before+1 {
		t.Errorf("B counts %d users after A's create, want %d", got, before+1)
	}
	b.warm(e.a)
	setActive(t, onB, aliceID(t, onB), false)
	at := time.Now()
	b.requireRefused("b")
	b.revocationDelay(e.a, at, "SCIM deactivation through B after the database restart")

	// An outage is logged, but nothing panics.
	e.a.checkLogs(t, false)
	e.b.checkLogs(t, false)
}

// checkCreates requires that every create m acknowledged (acked of them)
// is found through c, that each unanswered or failed one is there whole or
// not at all, and that c counts no other user. It returns the count.
func checkCreates(t *testing.T, c *scimConn, m *userModel, acked int, when string) int {
	t.Helper()
	landed := 0
	for _, r := range m.users {
		res := filterUsers(t, c, "userName", r.userName)
		switch {
		case r.id != "":
			if len(res) != 1 || res[0]["id"] != r.id || res[0]["externalId"] != r.externalID {
				t.Errorf("%s: acknowledged user %s (%s): %v", when, r.userName, r.id, res)
			}
			status, out, err := c.do(context.Background(), http.MethodGet, "/Users/"+r.id, nil)
			if err != nil || status != http.StatusOK || out["userName"] != r.userName {
				t.Errorf("%s: GET acknowledged user %s: %d %v %v", when, r.id, status, out, err)
			}
		case len(res) == 1:
			landed++
			if res[0]["displayName"] != "v0" || res[0]["externalId"] != r.externalID {
				t.Errorf("%s: unacknowledged create %s landed half: %v", when, r.userName, res[0])
			}
		case len(res) > 1:
			t.Errorf("%s: unacknowledged create %s landed %d times", when, r.userName, len(res))
		}
	}
	want := m.others + acked + landed
	if got := countUsers(t, c); got != want {
		t.Errorf("%s: %d users, want %d (%d before, %d acknowledged, %d unacknowledged but landed)", when, got, want, m.others, acked, landed)
	}
	return want
}

// outageBound bounds how long a request may be held while the database
// is down. Generous: each store transaction retries for a while before it
// gives up, and a request may run several.
const outageBound = 2 * time.Minute

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// scimMust sends one SCIM request through c and requires the status want.
func scimMust(t *testing.T, c *scimConn, want int, method, path string, body any) map[string]any {
	t.Helper()
	status, out, err := c.do(context.Background(), method, path, body)
	if err != nil || status != want {
		t.Fatalf("SCIM %s %s: %d %v %v, want %d", method, path, status, out, err, want)
	}
	return out
}

// filterUsers returns the users whose attr equals value.
func filterUsers(t *testing.T, c *scimConn, attr, value string) []map[string]any {
	t.Helper()
	status, out, err := c.do(context.Background(), http.MethodGet, "/Users?filter="+url.QueryEscape(attr+` eq "`+value+`"`), nil)
	if err != nil || status != http.StatusOK {
		t.Fatalf("filter %s eq %q: %d %v %v", attr, value, status, out, err)
	}
	raw, _ := out["Resources"].([]any)
	res := make([]map[string]any, 0, len(raw))
	for _, u := range raw {
		m, _ := u.(map[string]any)
		res = append(res, m)
	}
	return res
}

// refusalText is the first paragraph of a gateway page, for logs.
func refusalText(body string) string {
	_, after, ok := strings.Cut(body, "<p>")
	if !ok {
		return ""
	}
	text, _, _ := strings.Cut(after, "</p>")
	return strconv.Quote(text)
}
