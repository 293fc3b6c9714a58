package session

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.CreateOrg(&store.Org{ID: "acme", Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateUser(&store.User{ID: "u1", OrgID: "acme", UserName: "ann@acme.test", Active: true}); err != nil {
		t.Fatal(err)
	}
	return st
}

func newManager(t *testing.T, st *store.Store, c *clock, keys ...string) *Manager {
	t.Helper()
	var kb [][]byte
	for _, k := range keys {
		kb = append(kb, []byte(k))
	}
	m, err := New(Config{Store: st, Keys: kb, Secure: true, Lifetime: 8 * time.Hour, Idle: time.Hour, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

const (
	keyA = "key-A-0123456789abcdef0123456789abcdef"
	keyB = "key-B-0123456789abcdef0123456789abcdef"
)

// start signs a user in and returns a request carrying the cookie.
func start(t *testing.T, m *Manager, notAfter time.Time) (*http.Request, *http.Cookie) {
	t.Helper()
	rec := httptest.NewRecorder()
	if _, err := m.Start(rec, httptest.NewRequest(http.MethodGet, "/", nil),
		store.Session{OrgID: "acme", UserID: "u1", AuthMethod: "saml"}, notAfter); err != nil {
		t.Fatal(err)
	}
	cookies := rec.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("want 1 cookie, got %d", len(cookies))
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(cookies[0])
	return r, cookies[0]
}

func TestCookieAttributesAndContents(t *testing.T) {
	st := newStore(t)
	c := &clock{time.Now()}
	m := newManager(t, st, c, keyA)
	r, ck := start(t, m, time.Time{})
	if ck.Name != "__Host-ssogate_session" || !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Domain != "" {
		t.Errorf("cookie attributes: %+v", ck)
	}
	if ck.MaxAge != int((8 * time.Hour).Seconds()) {
		t.Errorf("MaxAge %d", ck.MaxAge)
	}
	sess, err := m.Load(r)
	if err != nil {
		t.Fatal(err)
	}
	if sess.OrgID != "acme" || sess.UserID != "u1" {
		t.Errorf("loaded %+v", sess)
	}
	// The cookie carries a sealed reference, not the record's key or data.
	if strings.Contains(ck.Value, sess.ID) || strings.Contains(ck.Value, "acme") {
		t.Error("cookie exposes the session record")
	}
}

func TestTamperedOrForeignCookiesAreRefused(t *testing.T) {
	st := newStore(t)
	c := &clock{time.Now()}
	m := newManager(t, st, c, keyA)
	_, ck := start(t, m, time.Time{})
	for name, v := range map[string]string{
		"flipped": ck.Value[:len(ck.Value)-2] + "AA",
		"empty":   "",
		"garbage": "not-a-cookie",
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.AddCookie(&http.Cookie{Name: ck.Name, Value: v})
		if _, err := m.Load(r); err != ErrNoSession {
			t.Errorf("%s: want ErrNoSession, got %v", name, err)
		}
	}
	// Sealed with a key this gateway does not have.
	other := newManager(t, st, c, keyB)
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(ck)
	if _, err := other.Load(r); err != ErrNoSession {
		t.Errorf("foreign key: want ErrNoSession, got %v", err)
	}
}

func TestKeyRotation(t *testing.T) {
	st := newStore(t)
	c := &clock{time.Now()}
	old := newManager(t, st, c, keyA)
	r, _ := start(t, old, time.Time{})

	rotated := newManager(t, st, c, keyB, keyA) // new key first, old still accepted
	if _, err := rotated.Load(r); err != nil {
		t.Fatalf("cookie sealed with the previous key refused during rotation: %v", err)
	}
	r2, _ := start(t, rotated, time.Time{})
	if _, err := newManager(t, st, c, keyB).Load(r2); err != nil {
		t.Fatalf("new cookies must be sealed with the first key: %v", err)
	}
	if _, err := newManager(t, st, c, keyB).Load(r); err != ErrNoSession {
		t.Fatalf("once the old key is removed its cookies must fail, got %v", err)
	}
}

func TestIdleAndAbsoluteLifetimes(t *testing.T) {
	st := newStore(t)
	c := &clock{time.Now()}
	m := newManager(t, st, c, keyA)

	r, _ := start(t, m, time.Time{})
	c.t = c.t.Add(50 * time.Minute)
	if _, err := m.Load(r); err != nil {
		t.Fatalf("active within idle window: %v", err)
	}
	c.t = c.t.Add(50 * time.Minute) // 50 min since the last use: still fine
	if _, err := m.Load(r); err != nil {
		t.Fatalf("use refreshes the idle window: %v", err)
	}
	c.t = c.t.Add(61 * time.Minute)
	if _, err := m.Load(r); err != ErrNoSession {
		t.Fatalf("idle past 1h: want ErrNoSession, got %v", err)
	}

	c.t = time.Now()
	r, _ = start(t, m, time.Time{})
	for i := 0; i < 16; i++ { // keep it busy for 8h
		c.t = c.t.Add(30 * time.Minute)
		_, err := m.Load(r)
		if i < 15 && err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if i == 15 && err != ErrNoSession {
			t.Fatalf("past the absolute lifetime: want ErrNoSession, got %v", err)
		}
	}
}

func TestSessionNotOnOrAfterCapsTheSession(t *testing.T) {
	st := newStore(t)
	c := &clock{time.Now()}
	m := newManager(t, st, c, keyA)
	r, ck := start(t, m, c.t.Add(20*time.Minute))
	if ck.MaxAge > 20*60 {
		t.Errorf("cookie outlives SessionNotOnOrAfter: MaxAge %d", ck.MaxAge)
	}
	c.t = c.t.Add(21 * time.Minute)
	if _, err := m.Load(r); err != ErrNoSession {
		t.Fatalf("want ErrNoSession after SessionNotOnOrAfter, got %v", err)
	}
	rec := httptest.NewRecorder()
	if _, err := m.Start(rec, httptest.NewRequest(http.MethodGet, "/", nil), store.Session{OrgID: "acme", UserID: "u1"}, c.t.Add(-time.Second)); err == nil {
		t.Fatal("a SessionNotOnOrAfter in the past must not start a session")
	}
}

func TestEndDeletesTheRecord(t *testing.T) {
	st := newStore(t)
	c := &clock{time.Now()}
	m := newManager(t, st, c, keyA)
	r, _ := start(t, m, time.Time{})
	sess, err := m.Load(r)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	if err := m.End(rec, r); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetSession(sess.ID); err == nil {
		t.Fatal("record still in the store after End")
	}
	if _, err := m.Load(r); err != ErrNoSession {
		t.Fatalf("want ErrNoSession, got %v", err)
	}
	cleared := rec.Result().Cookies()
	if len(cleared) != 1 || cleared[0].MaxAge >= 0 {
		t.Errorf("cookie not cleared: %+v", cleared)
	}
}

func TestBindingCookie(t *testing.T) {
	st := newStore(t)
	c := &clock{time.Now()}
	m := newManager(t, st, c, keyA)
	rec := httptest.NewRecorder()
	b1, err := m.Binding(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if err != nil {
		t.Fatal(err)
	}
	ck := rec.Result().Cookies()[0]
	// The IdP's POST to the ACS is cross-site: the binding must be sent on it.
	if ck.SameSite != http.SameSiteNoneMode || !ck.Secure || !ck.HttpOnly {
		t.Errorf("binding cookie attributes: %+v", ck)
	}
	r := httptest.NewRequest(http.MethodPost, "/sso/saml/acme/acs", nil)
	r.AddCookie(ck)
	got, ok := m.BindingFromRequest(r)
	if !ok || got != b1 {
		t.Fatalf("binding not read back: %q %v", got, ok)
	}
	// An existing binding is reused, not replaced (several tabs).
	rec2 := httptest.NewRecorder()
	if b2, _ := m.Binding(rec2, r); b2 != b1 || len(rec2.Result().Cookies()) != 0 {
		t.Error("binding replaced")
	}
	// Loopback http: SameSite=None needs Secure, and IdP and gateway are
	// same-site there, so Lax.
	ins, _ := New(Config{Store: st, Keys: [][]byte{[]byte(keyA)}, Lifetime: time.Hour, Now: c.now})
	rec3 := httptest.NewRecorder()
	if _, err := ins.Binding(rec3, httptest.NewRequest(http.MethodGet, "/", nil)); err != nil {
		t.Fatal(err)
	}
	if ck := rec3.Result().Cookies()[0]; ck.SameSite != http.SameSiteLaxMode || ck.Secure || ck.Name != "ssogate_authn" {
		t.Errorf("insecure binding cookie: %+v", ck)
	}
}

// SealedCookie picks the same cookie as net/http's Request.Cookie, which
// it replaces on the per-request path, whatever the Cookie headers hold.
func TestSealedCookieReadsCookiesAsNetHTTP(t *testing.T) {
	m := newManager(t, newStore(t), &clock{t: time.Now()}, keyA)
	n := m.CookieName()
	for _, lines := range [][]string{
		nil,
		{""},
		{n + "=abc"},
		{"a=1; " + n + "=abc; b=2"},
		{"  " + n + " = abc ;"},
		{n + "=\"abc\""},
		{n + "=\"abc"},
		{n + "=\""},
		{n + "="},
		{n + "=; " + n + "=later"},
		{n + "=bad\\value; " + n + "=good"},
		{n + "=bad\"inner; " + n + "=good"},
		{n + "=with space"},
		{n + "=a,b"},
		{n + "=ctl\x01; " + n + "=ok"},
		{n + "=caf\xc3\xa9; " + n + "=ok"},
		{n},
		{n + "x=1; x" + n + "=2"},
		{strings.ToUpper(n) + "=abc"},
		{"a=1", n + "=second-line"},
		{n + "=first", n + "=second"},
		{";;; ;" + n + "=x;;"},
		{"\t" + n + "=tab\t"},
		{n + "=a=b=c"},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		for _, l := range lines {
			r.Header.Add("Cookie", l)
		}
		want, wantOK := "", false
		if c, err := r.Cookie(n); err == nil && c.Value != "" {
			want, wantOK = c.Value, true
		}
		got, ok := m.SealedCookie(r)
		if got != want || ok != wantOK {
			t.Errorf("Cookie %q: SealedCookie = %q, %v; net/http reads %q, %v", lines, got, ok, want, wantOK)
		}
	}
}
