// Package session keeps signed-in browsers. The cookie, sealed by
// gorilla/sessions (HMAC-SHA256 plus AES), carries nothing but a random
// reference; the session itself is a record in the store, so an operator,
// an IdP (through SCIM) or a logout can end it at once.
package session

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strings"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"

	"github.com/ssogate/ssogate/store"
)

// Cookie names. With Secure cookies the `__Host-` prefix makes browsers
// refuse the cookie unless it is host-only, Path=/ and Secure, so a sibling
// subdomain cannot plant one.
const (
	cookieName        = "ssogate_session"
	bindingCookieName = "ssogate_authn"
	valueKey          = "ref"
)

// TouchInterval bounds how often a session's last-seen time is written:
// idle expiry needs minute precision, not a write per request. The
// recorded last-seen time lags real activity by up to this much, so an
// idle timeout must be well above it (the app's Validate refuses one
// under MinIdleTimeout).
const TouchInterval = time.Minute

// MinIdleTimeout is the shortest idle timeout that cannot end a session
// in active use: activity is recorded up to TouchInterval late, so the
// idle window left to the browser is the timeout minus TouchInterval.
const MinIdleTimeout = 2 * TouchInterval

const touchEvery = TouchInterval

// ErrNoSession means the request carries no usable session: no cookie, a
// cookie that fails to unseal, or a session that ended.
var ErrNoSession = errors.New("no valid session")

// Config configures a Manager.
type Config struct {
	Store *store.Store
	// Keys seal cookies: the first seals, all open (rotation).
	Keys [][]byte
	// Secure marks cookies Secure; only loopback http deployments turn it
	// off, since browsers drop Secure cookies over plain http.
	Secure   bool
	Lifetime time.Duration // absolute
	Idle     time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Manager starts, loads and ends sessions.
type Manager struct {
	cfg     Config
	cookies *sessions.CookieStore
	binding *securecookie.SecureCookie
	name    string
	bname   string
}

// New builds a Manager. Each configured key is stretched with HKDF into
// independent MAC and encryption keys, so operators can use any long
// random string.
func New(cfg Config) (*Manager, error) {
	if cfg.Store == nil {
		return nil, errors.New("session: no store")
	}
	if len(cfg.Keys) == 0 {
		return nil, errors.New("session: no keys")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var pairs [][]byte
	for i, k := range cfg.Keys {
		mac, err := hkdf.Key(sha256.New, k, nil, "ssogate session cookie mac", 32)
		if err != nil {
			return nil, fmt.Errorf("session: deriving key %d: %w", i, err)
		}
		enc, err := hkdf.Key(sha256.New, k, nil, "ssogate session cookie enc", 32)
		if err != nil {
			return nil, fmt.Errorf("session: deriving key %d: %w", i, err)
		}
		pairs = append(pairs, mac, enc)
	}
	cs := sessions.NewCookieStore(pairs...)
	cs.Options = &sessions.Options{
		Path:     "/",
		MaxAge:   int(cfg.Lifetime / time.Second),
		Secure:   cfg.Secure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
	cs.MaxAge(cs.Options.MaxAge)
	for _, c := range cs.Codecs {
		if sc, ok := c.(*securecookie.SecureCookie); ok {
			sc.SetSerializer(refSerializer{})
		}
	}
	m := &Manager{
		cfg:     cfg,
		cookies: cs,
		binding: securecookie.New(pairs[0], pairs[1]),
		name:    cookieName,
		bname:   bindingCookieName,
	}
	m.binding.MaxAge(int(time.Hour / time.Second))
	if cfg.Secure {
		m.name = "__Host-" + cookieName
		m.bname = "__Host-" + bindingCookieName
	}
	return m, nil
}

// CookieNames are the names of the cookies a Manager sets, without the
// `__Host-` prefix that Secure managers add.
func CookieNames() []string { return []string{cookieName, bindingCookieName} }

// CookieName is the session cookie's name.
func (m *Manager) CookieName() string { return m.name }

// Start creates the session record for rec (OrgID, UserID, AuthMethod,
// Groups, NameID) and sets the cookie that refers to it. notAfter, when not
// zero, caps the absolute lifetime (the assertion's SessionNotOnOrAfter).
//
// Start is called for a sign-in only. rec.AuthTime, when set, is when the
// IdP says it authenticated the user (AuthnInstant); it defaults to now
// and is never later than now (see AuthTime). The session the
// browser had before, if any, is ended first, whoever it belonged to: a
// sign-in never leaves an older session alive in the same browser, and
// the new one never reuses its reference (no fixation).
func (m *Manager) Start(w http.ResponseWriter, r *http.Request, rec store.Session, notAfter time.Time) (*store.Session, error) {
	p, err := m.Prepare(r, rec, notAfter)
	if err != nil {
		return nil, err
	}
	if p.Replaces != "" {
		if err := m.cfg.Store.DeleteSession(p.Replaces); err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("session: ending the previous session: %w", err)
		}
	}
	if err := m.cfg.Store.CreateSession(&p.Record); err != nil {
		return nil, fmt.Errorf("session: saving: %w", err)
	}
	if err := p.SetCookie(w, r); err != nil {
		return nil, err
	}
	return &p.Record, nil
}

// Pending is a session that a sign-in is about to start (see Prepare).
type Pending struct {
	// Record is the session record to store.
	Record store.Session
	// Replaces is the record ID of the session the browser had, "" if
	// none; it must end with the sign-in.
	Replaces string

	m   *Manager
	ref string
}

// Prepare does what Start does except write: it builds the record for
// rec and notAfter, with a new reference, and says which session the
// browser had. A caller that stores the record itself, together with its
// other writes (the SAML sign-in does), ends Replaces in the same
// transaction and then calls SetCookie.
func (m *Manager) Prepare(r *http.Request, rec store.Session, notAfter time.Time) (*Pending, error) {
	p := &Pending{m: m}
	if old, ok := m.RecordID(r); ok {
		p.Replaces = old
	}
	ref, err := randomToken()
	if err != nil {
		return nil, err
	}
	now := m.cfg.Now()
	rec.ID = recordID(ref)
	rec.Created = now
	// An IdP's AuthnInstant may be older than now (an IdP session), never
	// newer: a clock ahead of ours must not make a session look fresh.
	if rec.AuthTime.IsZero() || rec.AuthTime.After(now) {
		rec.AuthTime = now
	}
	rec.LastSeen = now
	rec.ExpiresAt = now.Add(m.cfg.Lifetime)
	if !notAfter.IsZero() && notAfter.Before(rec.ExpiresAt) {
		rec.ExpiresAt = notAfter
	}
	if !rec.ExpiresAt.After(now) {
		return nil, errors.New("session: the IdP allowed no session time (SessionNotOnOrAfter has passed)")
	}
	p.Record, p.ref = rec, ref
	return p, nil
}

// SetCookie sets the cookie that refers to p.Record, once it is stored.
func (p *Pending) SetCookie(w http.ResponseWriter, r *http.Request) error {
	m := p.m
	s := sessions.NewSession(m.cookies, m.name)
	opts := *m.cookies.Options
	opts.MaxAge = int(p.Record.ExpiresAt.Sub(p.Record.Created) / time.Second)
	s.Options = &opts
	s.Values[valueKey] = p.ref
	if err := m.cookies.Save(r, w, s); err != nil {
		return fmt.Errorf("session: sealing cookie: %w", err)
	}
	return nil
}

// Load returns the live session of the request, or ErrNoSession. A
// session past its idle or absolute lifetime is deleted on sight.
func (m *Manager) Load(r *http.Request) (*store.Session, error) {
	id, ok := m.RecordID(r)
	if !ok {
		return nil, ErrNoSession
	}
	return m.LoadRecord(id)
}

// LoadRecord is Load for a record ID that RecordID returned.
func (m *Manager) LoadRecord(id string) (*store.Session, error) {
	sess, err := m.cfg.Store.GetSession(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, fmt.Errorf("session: loading: %w", err)
	}
	now := m.cfg.Now()
	if m.ended(sess, now) {
		_ = m.cfg.Store.DeleteSession(id)
		return nil, ErrNoSession
	}
	if now.Sub(sess.LastSeen) >= touchEvery {
		// Losing a touch only shortens the idle window by a minute.
		_ = m.cfg.Store.TouchSession(id, now)
		sess.LastSeen = now
	}
	return sess, nil
}

// AuthTime is when the user of sess last authenticated. Sessions are
// created by sign-ins only and never extended by one, so records from
// before AuthTime was kept use their creation time.
func AuthTime(sess *store.Session) time.Time {
	if sess.AuthTime.IsZero() {
		return sess.Created
	}
	return sess.AuthTime
}

// Fresh reports whether a session that LoadRecord returned earlier is
// still within its lifetimes and needs no touch yet, so that it may be
// used again without reading the store. When it reports false, LoadRecord
// does what is due.
func (m *Manager) Fresh(sess *store.Session) bool {
	now := m.cfg.Now()
	return !m.ended(sess, now) && now.Sub(sess.LastSeen) < touchEvery
}

func (m *Manager) ended(sess *store.Session, now time.Time) bool {
	return !now.Before(sess.ExpiresAt) || (m.cfg.Idle > 0 && now.Sub(sess.LastSeen) >= m.cfg.Idle)
}

// End deletes the request's session record, if any, and clears the cookie.
func (m *Manager) End(w http.ResponseWriter, r *http.Request) error {
	var err error
	if id, ok := m.RecordID(r); ok {
		if derr := m.cfg.Store.DeleteSession(id); derr != nil && !errors.Is(derr, store.ErrNotFound) {
			err = fmt.Errorf("session: deleting: %w", derr)
		}
	}
	m.clear(w, m.name, http.SameSiteLaxMode)
	return err
}

// RecordID returns the ID of the session record that the request's cookie
// refers to, once the cookie has been authenticated and decrypted. It
// does not say whether the session still exists (see LoadRecord).
func (m *Manager) RecordID(r *http.Request) (string, bool) {
	sealed, ok := m.SealedCookie(r)
	if !ok {
		return "", false
	}
	return m.RecordIDOf(sealed)
}

// SealedCookie returns the request's session cookie as sent, still
// sealed: nothing about it is checked. It picks the cookie Request.Cookie
// would (the first well-formed one of that name, quotes removed), without
// Request.Cookie's allocations, since it runs on every request. (Go also
// ignores every cookie of a request that has more than 3,000, a bound on
// its allocations that this scan does not need.)
func (m *Manager) SealedCookie(r *http.Request) (string, bool) {
	for _, line := range r.Header["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			name, val, _ := strings.Cut(textproto.TrimString(part), "=")
			if textproto.TrimString(name) != m.name {
				continue
			}
			if v, ok := cookieValue(val); ok {
				return v, v != ""
			}
		}
	}
	return "", false
}

// cookieValue is net/http's reading of a cookie's value: surrounding
// double quotes removed, and no byte outside the cookie-octet range
// (RFC 6265 §4.1.1, as Go relaxes it to allow spaces and commas).
func cookieValue(raw string) (string, bool) {
	if len(raw) > 1 && raw[0] == '"' && raw[len(raw)-1] == '"' {
		raw = raw[1 : len(raw)-1]
	}
	for i := 0; i < len(raw); i++ {
		if b := raw[i]; b < 0x20 || b >= 0x7f || b == '"' || b == ';' || b == '\\' {
			return "", false
		}
	}
	return raw, true
}

// RecordIDOf is RecordID for a cookie value that SealedCookie returned.
func (m *Manager) RecordIDOf(sealed string) (string, bool) {
	var values map[any]any
	if err := securecookie.DecodeMulti(m.name, sealed, &values, m.cookies.Codecs...); err != nil {
		return "", false
	}
	ref, _ := values[valueKey].(string)
	if ref == "" {
		return "", false
	}
	return recordID(ref), true
}

// Binding returns the browser's sign-in binding, setting the cookie that
// carries it when the browser has none. Outstanding AuthnRequests are
// stored under the binding, so a SAML response is accepted only in the
// browser that asked for it.
//
// The IdP returns the user with a cross-site POST, on which browsers do not
// send SameSite=Lax cookies; this cookie is SameSite=None so that it comes
// back. It carries no authority on its own (it only selects which
// outstanding requests a response may answer), so that is safe. Over
// loopback http (the demo) SameSite=None is impossible without Secure, and
// there the IdP and the gateway are same-site anyway, so Lax is used.
func (m *Manager) Binding(w http.ResponseWriter, r *http.Request) (string, error) {
	if b, ok := m.BindingFromRequest(r); ok {
		return b, nil
	}
	raw, err := randomToken()
	if err != nil {
		return "", err
	}
	enc, err := m.binding.Encode(m.bname, raw)
	if err != nil {
		return "", fmt.Errorf("session: sealing binding cookie: %w", err)
	}
	http.SetCookie(w, &http.Cookie{
		Name:     m.bname,
		Value:    enc,
		Path:     "/",
		MaxAge:   int(time.Hour / time.Second),
		Secure:   m.cfg.Secure,
		HttpOnly: true,
		SameSite: m.bindingSameSite(),
	})
	return recordID(raw), nil
}

// BindingFromRequest returns the binding the request's cookie carries.
func (m *Manager) BindingFromRequest(r *http.Request) (string, bool) {
	c, err := r.Cookie(m.bname)
	if err != nil || c.Value == "" {
		return "", false
	}
	var raw string
	if err := m.binding.Decode(m.bname, c.Value, &raw); err != nil || raw == "" {
		return "", false
	}
	return recordID(raw), true
}

// ClearBinding removes the binding cookie once a sign-in completes.
func (m *Manager) ClearBinding(w http.ResponseWriter) {
	m.clear(w, m.bname, m.bindingSameSite())
}

func (m *Manager) bindingSameSite() http.SameSite {
	if m.cfg.Secure {
		return http.SameSiteNoneMode
	}
	return http.SameSiteLaxMode
}

func (m *Manager) clear(w http.ResponseWriter, name string, ss http.SameSite) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: "", Path: "/", MaxAge: -1,
		Secure: m.cfg.Secure, HttpOnly: true, SameSite: ss,
	})
}

// refSerializer stores the session's only value, the reference, as its
// bytes. gorilla's default gob serializer compiles a decoder for every
// cookie, which made it a third of the cost of a signed-in request.
type refSerializer struct{}

func (refSerializer) Serialize(src any) ([]byte, error) {
	values, ok := src.(map[any]any)
	if !ok {
		return nil, fmt.Errorf("session: cannot serialize %T", src)
	}
	ref, ok := values[valueKey].(string)
	if !ok || len(values) != 1 {
		return nil, errors.New("session: a cookie carries exactly one reference")
	}
	return []byte(ref), nil
}

func (refSerializer) Deserialize(src []byte, dst any) error {
	values, ok := dst.(*map[any]any)
	if !ok {
		return fmt.Errorf("session: cannot deserialize into %T", dst)
	}
	if *values == nil {
		*values = map[any]any{}
	}
	(*values)[valueKey] = string(src)
	return nil
}

// randomToken is 256 bits from crypto/rand.
func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("session: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// recordID is what the store keeps: the hash of the cookie's reference, so
// a copy of the database holds no usable cookie.
func recordID(ref string) string {
	sum := sha256.Sum256([]byte(ref))
	return hex.EncodeToString(sum[:])
}

// BrowserSecret returns a 32-byte secret for purpose derived from the
// reference in the request's session cookie, or false when the request
// has no valid cookie. The reference never reaches the store (it keeps
// only the reference's hash), so what is sealed with this secret cannot
// be opened from a copy of the database, whatever else the copy holds:
// only the browser it was made for brings the key back. Every process
// with the cookie keys derives the same secret.
func (m *Manager) BrowserSecret(r *http.Request, purpose string) ([]byte, bool) {
	sealed, ok := m.SealedCookie(r)
	if !ok {
		return nil, false
	}
	var values map[any]any
	if err := securecookie.DecodeMulti(m.name, sealed, &values, m.cookies.Codecs...); err != nil {
		return nil, false
	}
	ref, _ := values[valueKey].(string)
	if ref == "" {
		return nil, false
	}
	k, err := hkdf.Key(sha256.New, []byte(ref), nil, "ssogate browser secret "+purpose, 32)
	if err != nil {
		return nil, false
	}
	return k, true
}
