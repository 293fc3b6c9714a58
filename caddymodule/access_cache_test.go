package caddymodule

import (
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/ssogate/ssogate/caddymodule/pages"
	"github.com/ssogate/ssogate/caddymodule/session"
	"github.com/ssogate/ssogate/store"
)

// cacheFixture is a gateway wired to a real store with one active org, one
// user in its admin group and a signed-in session, with a fake clock.
type cacheFixture struct {
	g      *Gateway
	st     *store.Store
	cookie *http.Cookie
	user   *store.User
	now    time.Time
	dir    string // the store's
}

func newCacheFixture(t *testing.T) *cacheFixture {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &cacheFixture{st: st, now: time.Now(), dir: dir}
	sm, err := session.New(session.Config{
		Store: st, Keys: [][]byte{[]byte("0123456789abcdef0123456789abcdef")},
		Secure: true, Lifetime: 8 * time.Hour, Idle: time.Hour,
		Now: func() time.Time { return f.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	base, _ := url.Parse("https://app.example.com")
	g := &Gateway{Prefix: "/sso", app: &App{baseURL: base, shared: &appState{}}, logger: zap.NewNop(), lazy: &gatewayState{}}
	if g.pages, err = pages.New(); err != nil {
		t.Fatal(err)
	}
	g.headers, _ = resolveHeaders("", nil)
	g.stripped = strippedHeaders(g.headers)
	g.lazy.once.Do(func() { g.lazy.store, g.lazy.sessions = st, sm })
	f.g = g

	if err := st.CreateOrg(&store.Org{ID: "acme", Name: "Acme", State: store.OrgActive,
		AdminGroup: store.GroupMapping{Name: "admins"}}); err != nil {
		t.Fatal(err)
	}
	if err := st.AddDomain(&store.Domain{OrgID: "acme", Name: "acme.test", Status: store.DomainVerified}); err != nil {
		t.Fatal(err)
	}
	f.user = &store.User{OrgID: "acme", UserName: "ann@acme.test", Active: true, Source: store.SourceSAML}
	if err := st.CreateUser(f.user); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	if _, err := sm.Start(rec, httptest.NewRequest(http.MethodGet, "/", nil), store.Session{
		OrgID: "acme", UserID: f.user.ID, AuthMethod: authSAML, Groups: []string{"admins"}, Email: "ann@acme.test",
	}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	f.cookie = rec.Result().Cookies()[0]
	return f
}

// request sends one API request and reports whether it reached the
// upstream, and as whom.
func (f *cacheFixture) request(t *testing.T) (bool, string) {
	t.Helper()
	var user string
	reached := false
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		reached, user = true, r.Header.Get("X-Sso-User")
		return nil
	})
	r := httptest.NewRequest(http.MethodGet, "https://app.example.com/api", nil)
	r.AddCookie(f.cookie)
	w := httptest.NewRecorder()
	if err := f.g.ServeHTTP(w, r, next); err != nil {
		t.Fatal(err)
	}
	if !reached && w.Code != http.StatusUnauthorized {
		t.Fatalf("refused request: status %d, want 401", w.Code)
	}
	return reached, user
}

// cached reports whether the session cookie has a usable cached re-check.
func (f *cacheFixture) cached() bool {
	e, ok := f.g.lazy.rechecked.get(sha256.Sum256([]byte(f.cookie.Value)))
	return ok && !f.st.Changed(e.watch)
}

// sessionID is the record ID of the fixture's session.
func (f *cacheFixture) sessionID(t *testing.T) string {
	t.Helper()
	sid, ok := f.g.lazy.sessions.RecordIDOf(f.cookie.Value)
	if !ok {
		t.Fatal("cookie does not unseal")
	}
	return sid
}

// A re-check is reused only while what it read is unchanged: the first
// request after a write to the session, its user or their org is
// re-checked in full, so a deactivation ends access on the very next
// request, as without the cache.
func TestRecheckCacheNeverOutlivesAWrite(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(f *cacheFixture) error // before the first request
		write func(f *cacheFixture) error
	}{
		{name: "user deactivated", write: func(f *cacheFixture) error {
			_, err := f.st.UpdateUser("acme", f.user.ID, func(u *store.User) error { u.Active = false; return nil })
			return err
		}},
		{name: "org deactivated", write: func(f *cacheFixture) error {
			_, err := f.st.UpdateOrg("acme", func(o *store.Org) error { o.State = store.OrgInactive; return nil })
			return err
		}},
		{name: "admin group mapping changed", write: func(f *cacheFixture) error {
			_, err := f.st.UpdateOrg("acme", func(o *store.Org) error { o.AdminGroup.Name = "owners"; return nil })
			return err
		}},
		{name: "user deleted", write: func(f *cacheFixture) error { return f.st.DeleteUser("acme", f.user.ID) }},
		{name: "signed out", write: func(f *cacheFixture) error {
			sid, _ := f.g.lazy.sessions.RecordIDOf(f.cookie.Value)
			return f.st.DeleteSession(sid)
		}},
		{name: "all the user's sessions ended", write: func(f *cacheFixture) error {
			_, err := f.st.DeleteUserSessions("acme", f.user.ID)
			return err
		}},
		{name: "domain removed", write: func(f *cacheFixture) error { return f.st.RemoveDomain("acme", "acme.test") }},
		{name: "admin group provisioned without the user", write: func(f *cacheFixture) error {
			return f.st.CreateGroup(&store.Group{OrgID: "acme", DisplayName: "admins"})
		}},
		{name: "removed from the provisioned admin group", setup: func(f *cacheFixture) error {
			return f.st.CreateGroup(&store.Group{ID: "g-admins", OrgID: "acme", DisplayName: "admins", Members: []string{f.user.ID}})
		}, write: func(f *cacheFixture) error {
			_, err := f.st.UpdateGroup("acme", "g-admins", func(g *store.Group) error { g.Members = nil; return nil })
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newCacheFixture(t)
			if tc.setup != nil {
				if err := tc.setup(f); err != nil {
					t.Fatal(err)
				}
			}
			for range 2 {
				if ok, user := f.request(t); !ok || user != "ann@acme.test" {
					t.Fatalf("signed-in request: reached %v as %q", ok, user)
				}
			}
			if n := len(f.g.lazy.rechecked.entries); n != 1 {
				t.Fatalf("%d cached re-checks, want 1", n)
			}
			if err := tc.write(f); err != nil {
				t.Fatal(err)
			}
			if ok, _ := f.request(t); ok {
				t.Fatal("request after the change reached the upstream")
			}
			if ok, _ := f.request(t); ok {
				t.Fatal("second request after the change reached the upstream")
			}
		})
	}
}

// Writes that cannot change a re-check's outcome — another org, another
// user of the same org, the audit trail, a session touch — leave it
// cached; a session that needs a touch or has gone idle is not served
// from the cache either.
func TestRecheckCacheLifetimes(t *testing.T) {
	f := newCacheFixture(t)
	if ok, _ := f.request(t); !ok {
		t.Fatal("first request refused")
	}
	sid := f.sessionID(t)
	if !f.cached() {
		t.Fatal("re-check not cached")
	}
	if err := f.st.CreateOrg(&store.Org{ID: "other", Name: "Other"}); err != nil {
		t.Fatal(err)
	}
	bob := &store.User{OrgID: "acme", UserName: "bob@acme.test", Active: true, Source: store.SourceSCIM}
	if err := f.st.CreateUser(bob); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.UpdateUser("acme", bob.ID, func(u *store.User) error { u.Active = false; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := f.st.AppendAudit(&store.AuditEvent{OrgID: "acme", Action: "test"}); err != nil {
		t.Fatal(err)
	}
	// An IdP syncing the directory: another user joins and leaves a group.
	staff := &store.Group{OrgID: "acme", DisplayName: "staff"}
	if err := f.st.CreateGroup(staff); err != nil {
		t.Fatal(err)
	}
	if ok, _ := f.request(t); !ok || !f.cached() { // a new group name: re-checked once
		t.Fatalf("after a group was created: reached %v, cached %v", ok, f.cached())
	}
	for _, members := range [][]string{{bob.ID}, nil} {
		if _, err := f.st.UpdateGroup("acme", staff.ID, func(g *store.Group) error { g.Members = members; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if !f.cached() {
		t.Fatal("a write to another org, another user, another user's memberships or the audit trail dropped the cached re-check")
	}
	if ok, _ := f.request(t); !ok || !f.cached() {
		t.Fatalf("after unrelated writes: reached %v, cached %v", ok, f.cached())
	}

	// Two minutes on, the session needs a touch: served through the store,
	// which records it.
	f.now = f.now.Add(2 * time.Minute)
	if ok, _ := f.request(t); !ok {
		t.Fatal("request after two minutes refused")
	}
	sess, err := f.st.GetSession(sid)
	if err != nil || !sess.LastSeen.Equal(f.now) {
		t.Fatalf("session not touched: %v, %v", sess, err)
	}

	// Past the idle timeout the cached re-check must not keep it alive.
	f.now = f.now.Add(time.Hour)
	if ok, _ := f.request(t); ok {
		t.Fatal("idle session reached the upstream")
	}
	if _, err := f.st.GetSession(sid); err == nil {
		t.Fatal("idle session not deleted")
	}
}

// A store that cannot answer during the full re-check (here: closed, as
// in a database outage) refuses the request with 503 and ends nothing:
// the session is still there when the store is back.
func TestStoreOutageRefusesButKeepsTheSession(t *testing.T) {
	f := newCacheFixture(t)
	if ok, _ := f.request(t); !ok {
		t.Fatal("first request refused")
	}
	sid := f.sessionID(t)
	// A write to the user sends the next request to the full re-check.
	if _, err := f.st.UpdateUser("acme", f.user.ID, func(u *store.User) error { u.DisplayName = "Ann"; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := f.st.Close(); err != nil {
		t.Fatal(err)
	}
	for _, accept := range []string{"text/html", "application/json"} {
		r := httptest.NewRequest(http.MethodGet, "https://app.example.com/api", nil)
		r.Header.Set("Accept", accept)
		r.AddCookie(f.cookie)
		w := httptest.NewRecorder()
		reached := false
		next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { reached = true; return nil })
		if err := f.g.ServeHTTP(w, r, next); err != nil {
			t.Fatal(err)
		}
		if reached || w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
			t.Fatalf("%s during the outage: reached %v, status %d, Retry-After %q; want 503 with Retry-After",
				accept, reached, w.Code, w.Header().Get("Retry-After"))
		}
	}
	st, err := store.Open(f.dir, store.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.GetSession(sid); err != nil {
		t.Fatalf("the outage ended the session: %v", err)
	}
}

// Concurrent requests with one cookie after a change share one full
// re-check: the first runs it, the others wait for its outcome (or find
// it cached), so a browser's parallel requests do not each go to the
// store. The outcome still ends access when the change calls for it.
func TestRecheckConcurrentRequestsShareOne(t *testing.T) {
	f := newCacheFixture(t)
	m, err := newMetrics(prometheus.NewRegistry(), func() (int, error) { return 0, nil }, func() float64 { return 1 })
	if err != nil {
		t.Fatal(err)
	}
	f.g.app.metrics = m
	if ok, _ := f.request(t); !ok {
		t.Fatal("first request refused")
	}
	// The full re-check waits for the other 15 to arrive, so that they
	// do arrive while it is under way (a bound, not a timing assertion:
	// without joining, none would ever be counted and the re-checks run
	// one each after it).
	f.g.lazy.leaderHook = func(fl *recheckFlight) {
		for deadline := time.Now().Add(10 * time.Second); fl.waiting.Load() < 15 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
	}
	concurrently := func() (reached int) {
		const n = 16
		start := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				ok := false
				next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
					ok = r.Header.Get("X-Sso-User") == "ann@acme.test"
					return nil
				})
				r := httptest.NewRequest(http.MethodGet, "https://app.example.com/api", nil)
				r.AddCookie(f.cookie)
				if err := f.g.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
					t.Error(err)
				}
				mu.Lock()
				defer mu.Unlock()
				if ok {
					reached++
				}
			}()
		}
		close(start)
		wg.Wait()
		return reached
	}

	// A change that keeps access: one full re-check for all of them.
	if _, err := f.st.UpdateUser("acme", f.user.ID, func(u *store.User) error { u.DisplayName = "Ann"; return nil }); err != nil {
		t.Fatal(err)
	}
	if n := concurrently(); n != 16 {
		t.Fatalf("%d of 16 concurrent requests reached the upstream", n)
	}
	if misses := testutil.ToFloat64(m.recheckMiss); misses != 2 {
		t.Errorf("%v full re-checks (the first request's and one for the 16), want 2", misses)
	}

	// A change that ends access ends it for every one of them.
	if _, err := f.st.UpdateUser("acme", f.user.ID, func(u *store.User) error { u.Active = false; return nil }); err != nil {
		t.Fatal(err)
	}
	if n := concurrently(); n != 0 {
		t.Fatalf("%d concurrent requests reached the upstream after deactivation", n)
	}
}
