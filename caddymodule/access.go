package caddymodule

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/ssogate/ssogate/caddymodule/session"
	ident "github.com/ssogate/ssogate/identity"
	"github.com/ssogate/ssogate/store"
)

// authenticate loads the request's session and re-checks, on every
// request, everything that may have changed since sign-in: the org is
// still active, the user still exists and is active, and they are still in
// the admin group. A session that fails is deleted, so the next request
// does not pay for the checks again.
//
// The outcome of a re-check is reused (see recheckCache) while the store
// has seen no write to the records it read — the session, its user and
// their memberships, their org (store.Watch) — since reading them again
// could only give the same answer, and while the session needs nothing
// done about its lifetimes (Fresh), which depend on the clock.
//
// A store that cannot answer (a database outage) is an error, not a
// verdict: the request is refused, and the session is kept for when the
// store is back. Only a record found missing or failing a rule ends it.
func (g *Gateway) authenticate(st *gatewayState, r *http.Request) (*identityValues, bool, error) {
	sealed, ok := st.sessions.SealedCookie(r)
	if !ok {
		return nil, false, nil
	}
	// The cache is keyed by a hash of the sealed cookie: a hit means this
	// exact cookie was unsealed (authenticated) before, so unsealing it
	// again, the main cost left on this path, can be skipped.
	key := cookieKey(sealed)
	if e, ok := st.rechecked.get(key); ok && !st.store.Changed(e.watch) && st.sessions.Fresh(e.sess) {
		g.observeRecheck(true)
		return e.id, true, nil
	}
	// Concurrent requests with this cookie (a browser's parallel requests
	// after a change) wait for one full re-check instead of each running
	// its own against the store; its outcome serves them on the cache's
	// terms, and a refusal or a store error is theirs too.
	f, leader := st.rechecked.join(key)
	if !leader {
		select {
		case <-f.done:
		case <-r.Context().Done():
			return nil, false, r.Context().Err()
		}
		switch {
		case f.err != nil:
			return nil, false, f.err
		case !f.ok:
			return nil, false, nil
		case !st.store.Changed(f.e.watch) && st.sessions.Fresh(f.e.sess):
			g.observeRecheck(true)
			return f.e.id, true, nil
		}
		// Changed again since that re-check began: one of its own.
		e, ok, err := g.fullRecheck(st, key, sealed)
		return e.id, ok, err
	}
	defer st.rechecked.land(key, f)
	if st.leaderHook != nil {
		st.leaderHook(f)
	}
	f.e, f.ok, f.err = g.fullRecheck(st, key, sealed)
	return f.e.id, f.ok, f.err
}

// fullRecheck unseals the cookie, loads its session and re-checks it (see
// authenticate), caching a success under key.
func (g *Gateway) fullRecheck(st *gatewayState, key [sha256.Size]byte, sealed string) (recheckEntry, bool, error) {
	g.observeRecheck(false)
	sid, ok := st.sessions.RecordIDOf(sealed)
	if !ok {
		return recheckEntry{}, false, nil
	}
	// Each watch is taken before the records it covers are read, so that
	// a write racing with this re-check leaves its outcome already stale.
	watch := st.store.Watch(store.WatchSession(sid))
	sess, err := st.sessions.LoadRecord(sid)
	if errors.Is(err, session.ErrNoSession) {
		return recheckEntry{}, false, nil
	}
	if err != nil {
		return recheckEntry{}, false, err
	}
	watch = watch.With(st.store, store.WatchOrg(sess.OrgID), store.WatchUser(sess.OrgID, sess.UserID))
	reason, id, err := g.recheck(st.store, sess)
	if err != nil {
		return recheckEntry{}, false, err
	}
	if reason != "" {
		g.logger.Info("session ended by re-check",
			zap.String("org", sess.OrgID), zap.String("user_id", sess.UserID), zap.String("reason", reason))
		_ = st.store.DeleteSession(sess.ID)
		return recheckEntry{}, false, nil
	}
	e := recheckEntry{watch: watch, sess: sess, id: id.values()}
	st.rechecked.put(key, e)
	return e, true, nil
}

// cookieKey is the SHA-256 of a sealed session cookie, the re-check
// cache's key: the cache holds no usable cookie. Session cookies are far
// shorter than the buffer, which keeps the hashed copy off the heap.
func cookieKey(sealed string) [sha256.Size]byte {
	var buf [512]byte
	if len(sealed) > len(buf) {
		return sha256.Sum256([]byte(sealed))
	}
	return sha256.Sum256(append(buf[:0], sealed...))
}

// recheckCacheSize bounds the remembered re-checks: one per recently
// active session, a few hundred bytes each.
const recheckCacheSize = 32 << 10

// recheckCache maps session cookies (by the SHA-256 of their sealed value)
// to the outcome of their last successful re-check, with the store.Watch
// taken before it. An entry is used only while nothing it watched has
// changed, so it never outlives a write that could change its outcome
// (deactivation, removal from a group, org changes, logout, ...), while
// writes to other users, other orgs and the audit trail leave it alone.
type recheckCache struct {
	mu      sync.RWMutex
	entries map[[sha256.Size]byte]recheckEntry
	flights map[[sha256.Size]byte]*recheckFlight
}

// recheckFlight is a full re-check under way; its outcome is set before
// done is closed.
type recheckFlight struct {
	done    chan struct{}
	waiting atomic.Int32 // requests that joined it, for tests
	e       recheckEntry
	ok      bool
	err     error
}

// join returns the re-check under way for key, or starts one (leader).
// A leader must land it.
func (c *recheckCache) join(key [sha256.Size]byte) (f *recheckFlight, leader bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f := c.flights[key]; f != nil {
		f.waiting.Add(1)
		return f, false
	}
	if c.flights == nil {
		c.flights = make(map[[sha256.Size]byte]*recheckFlight)
	}
	f = &recheckFlight{done: make(chan struct{})}
	c.flights[key] = f
	return f, true
}

// land ends the re-check under way for key, releasing those waiting.
func (c *recheckCache) land(key [sha256.Size]byte, f *recheckFlight) {
	c.mu.Lock()
	delete(c.flights, key)
	c.mu.Unlock()
	close(f.done)
}

type recheckEntry struct {
	watch store.Watch
	sess  *store.Session  // shared: never modified
	id    *identityValues // shared: never modified
}

func (c *recheckCache) get(key [sha256.Size]byte) (recheckEntry, bool) {
	c.mu.RLock()
	e, ok := c.entries[key]
	c.mu.RUnlock()
	return e, ok
}

func (c *recheckCache) put(key [sha256.Size]byte, e recheckEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = make(map[[sha256.Size]byte]recheckEntry)
	}
	if _, ok := c.entries[key]; !ok && len(c.entries) >= recheckCacheSize {
		// Full: forget an arbitrary entry (map order is random); it costs
		// that session one full re-check.
		for k := range c.entries {
			delete(c.entries, k)
			break
		}
	}
	c.entries[key] = e
}

// recheck returns why the session must end ("" if it may go on) and the
// identity it carries; err means the store could not answer, which ends
// nothing.
func (g *Gateway) recheck(st *store.Store, sess *store.Session) (string, identity, error) {
	org, err := st.GetOrg(sess.OrgID)
	if errors.Is(err, store.ErrNotFound) {
		return "organization gone", identity{}, nil
	}
	if err != nil {
		return "", identity{}, fmt.Errorf("re-check: reading the organization: %w", err)
	}
	user, err := st.GetUser(sess.OrgID, sess.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return "user gone", identity{}, nil
	}
	if err != nil {
		return "", identity{}, fmt.Errorf("re-check: reading the user: %w", err)
	}
	if !user.Active {
		return "user deactivated", identity{}, nil
	}
	if reason, err := recheckLocal(st, org, user, sess); err != nil || reason != "" {
		return reason, identity{}, err
	}
	verified := verifiedDomains{st: st, org: org.ID}
	var asserted string // by the IdP at sign-in, in a verified domain
	if sess.AuthMethod == authSAML {
		if org.State != store.OrgActive {
			return "organization's SSO deactivated", identity{}, nil
		}
		ok, err := authorized(st, org, user, sess.Groups)
		if err != nil {
			return "", identity{}, fmt.Errorf("re-check: admin group: %w", err)
		}
		if !ok {
			return "not in the admin group", identity{}, nil
		}
		// The sign-in rule, again: an IdP vouches only for addresses in
		// its org's verified domains. A domain moved to another org, or
		// no longer verified, takes its SSO sessions with it.
		email := sess.Email
		if email == "" { // a record from before sessions kept it
			email = primaryEmail(user)
		}
		if asserted = verified.address(email); asserted == "" {
			if verified.err != nil {
				return "", identity{}, verified.err
			}
			return "address's domain no longer verified for the organization", identity{}, nil
		}
	}
	// The stored userName and emails are whatever the org's SCIM client
	// or admins wrote, in any domain, and an upstream keys accounts on
	// them. Only an address in a domain this org proved it owns goes out,
	// else the address the IdP asserted at sign-in, else none.
	userName := verified.address(user.UserName)
	if userName == "" {
		userName = asserted
	}
	email := verified.address(primaryEmail(user))
	if email == "" {
		email = asserted
	}
	if verified.err != nil {
		return "", identity{}, verified.err
	}
	return "", identity{
		UserID:     user.ID,
		User:       userName,
		Email:      email,
		Name:       user.DisplayName,
		Groups:     sess.Groups,
		Org:        org.ID,
		AuthMethod: reportedMethod(org, sess),
		Subject:    subjectOf(org.ID, user, sess),
	}, nil
}

// verifiedDomains tells which addresses are in an org's verified
// domains. It remembers the last domain looked up: a user's userName,
// email and asserted address are mostly in one domain.
type verifiedDomains struct {
	st     *store.Store
	org    string
	domain string
	ok     bool
	err    error // the first look-up the store could not answer
}

// address returns addr if it is an address in one of the org's verified
// domains, else "".
func (v *verifiedDomains) address(addr string) string {
	d := ident.EmailDomain(addr)
	if d == "" {
		return ""
	}
	if d != v.domain {
		owner, err := v.st.OrgForDomain(d)
		v.domain, v.ok = d, err == nil && owner == v.org
		if err != nil && !errors.Is(err, store.ErrNotFound) && v.err == nil {
			v.err = fmt.Errorf("re-check: domain look-up: %w", err)
			v.domain = "" // not remembered: the answer is unknown
		}
	}
	if !v.ok {
		return ""
	}
	return addr
}

// subjectOf is identity.Subject. The IdP's identifier is chosen by the
// org's IdP or SCIM client, so another org's can be made equal to it: it
// goes out qualified by the org ("acme/00u1okta"; org IDs hold no '/').
// A user no IdP knows (a local account) gets ssogate's user id, a UUID
// with no '/', so it can equal no qualified subject either.
func subjectOf(orgID string, u *store.User, sess *store.Session) string {
	switch {
	case u.ExternalID != "":
		return orgID + "/" + u.ExternalID
	case sess.NameID != "":
		return orgID + "/" + sess.NameID
	case strings.Contains(u.ID, "/"):
		// Not a store-assigned UUID: it could read as another org's
		// qualified subject, so none goes out.
		return ""
	}
	return u.ID
}

// Authentication methods, as the X-SSO-Auth-Method header reports them.
const (
	authSAML = "saml"
)

// errOverage marks a refusal for want of group information: Entra ID sent
// a groups.link claim and SCIM has not provisioned the admin group.
var errOverage = errors.New("group overage without SCIM membership")

// authorized decides whether user may sign in to org (SPEC §3.5). When SCIM
// has provisioned the org's admin group, its membership is the truth, so
// removing someone from the group in the IdP ends their access even while
// the IdP would still assert the group. Otherwise the groups asserted at
// sign-in decide, matched by the group's IdP ID or, case-insensitively,
// its name (ASCII letters only: Unicode folding would let a group named
// "ſsogate-admins", with a long s, pass for "ssogate-admins").
// user is nil for someone signing in for the first time.
func authorized(st *store.Store, org *store.Org, user *store.User, asserted []string) (bool, error) {
	return inGroup(st, org, org.AdminGroup, user, asserted)
}

// inGroup tells whether user is in the mapped group m, by the rules of
// authorized; an empty mapping has no members.
func inGroup(st *store.Store, org *store.Org, m store.GroupMapping, user *store.User, asserted []string) (bool, error) {
	if m.ID == "" && m.Name == "" {
		return false, nil
	}
	if gid, err := scimGroupID(st, org, m); err == nil {
		if user == nil || user.ID == "" {
			return false, nil // not provisioned, so not a member
		}
		return st.IsMember(org.ID, gid, user.ID)
	} else if errors.Is(err, store.ErrAmbiguous) {
		// Several provisioned groups have the mapped name: none of them
		// decides, and neither do the asserted groups (one of those
		// groups may be the real one, and may have removed the user).
		// The mapping must name the group by its ID.
		return false, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	for _, a := range asserted {
		if (m.ID != "" && a == m.ID) || (m.Name != "" && ident.EqualFold(a, m.Name)) {
			return true, nil
		}
	}
	return false, nil
}

// scimAdminGroupID finds the provisioned group that the admin group
// mapping names (see scimGroupID).
func scimAdminGroupID(st *store.Store, org *store.Org) (string, error) {
	return scimGroupID(st, org, org.AdminGroup)
}

// scimGroupID finds the provisioned group that a mapping names: by the
// IdP's group ID (Entra ID pushes it as externalId), else by name (Okta
// pushes groups without one). Only the indexes are read, not the group
// record with its member list, since this runs on every request.
func scimGroupID(st *store.Store, org *store.Org, m store.GroupMapping) (string, error) {
	if m.ID != "" {
		if id, err := st.GroupIDByExternalID(org.ID, m.ID); err == nil || !errors.Is(err, store.ErrNotFound) {
			return id, err
		}
	}
	if m.Name != "" {
		return st.GroupIDByDisplayName(org.ID, m.Name)
	}
	return "", store.ErrNotFound
}

func primaryEmail(u *store.User) string {
	for _, e := range u.Emails {
		if e.Primary {
			return e.Value
		}
	}
	if len(u.Emails) > 0 {
		return u.Emails[0].Value
	}
	if strings.Contains(u.UserName, "@") {
		return u.UserName
	}
	return ""
}
