package scim

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/ssogate/ssogate/store"
)

// Why an authentication failed (for logs and the audit trail only; the
// client always gets the same 401).
const (
	reasonNoOrg    = "unknown organization"
	reasonNoToken  = "no bearer token"
	reasonNoSCIM   = "organization has no SCIM token"
	reasonBadToken = "wrong token"
	reasonInternal = "store error"
)

// maxTokenLen bounds what is hashed; real tokens are 43 characters.
const maxTokenLen = 512

// authenticate returns the organization whose SCIM token the Authorization
// header carries, or nil and why not. The token is compared by its SHA-256
// (the only form stored) in constant time, and a hash is compared even
// when there is no organization or token to compare with.
func (s *Server) authenticate(orgID, header string) (*store.Org, string) {
	token, hasToken := bearerToken(header)
	var org *store.Org
	if orgIDPattern.MatchString(orgID) {
		o, err := s.cfg.Store.GetOrg(orgID)
		switch {
		case err == nil:
			org = o
		case !errors.Is(err, store.ErrNotFound):
			s.log.Error("SCIM authentication: loading organization", zap.String("org", orgID), zap.Error(err))
			return nil, reasonInternal
		}
	}
	want := s.dummyHash[:]
	if org != nil && len(org.SCIMTokenHash) == sha256.Size {
		want = org.SCIMTokenHash
	}
	got := sha256.Sum256([]byte(token))
	match := subtle.ConstantTimeCompare(got[:], want) == 1
	switch {
	case org == nil:
		return nil, reasonNoOrg
	case !hasToken:
		return nil, reasonNoToken
	case len(org.SCIMTokenHash) != sha256.Size:
		return nil, reasonNoSCIM
	case !match:
		return nil, reasonBadToken
	}
	return org, ""
}

// bearerToken extracts the token of an "Authorization: Bearer <token>"
// header (the scheme is case-insensitive, RFC 6750).
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	if token == "" || len(token) > maxTokenLen {
		return "", false
	}
	return token, true
}

// maxTrackedSources bounds the limiter's memory.
const maxTrackedSources = 10_000

// failureLimiter slows down repeated authentication failures of one
// source: each key (source address and organization) has a token bucket
// that failures drain; while it is empty the key is refused before its
// token is even checked. Keying by organization too means that a
// misconfigured or hostile tenant behind an IdP's shared egress addresses
// cannot lock another organization's provisioning out.
type failureLimiter struct {
	burst int
	every time.Duration

	mu      sync.Mutex
	sources map[string]*rate.Limiter
}

func newFailureLimiter(burst int, every time.Duration) *failureLimiter {
	return &failureLimiter{burst: burst, every: every, sources: make(map[string]*rate.Limiter)}
}

// allowed reports whether key may try to authenticate now, and if not,
// when it may.
func (l *failureLimiter) allowed(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.sources[key]
	if lim == nil {
		return true, 0
	}
	tokens := lim.TokensAt(now)
	if tokens >= 1 {
		return true, 0
	}
	return false, time.Duration((1 - tokens) * float64(l.every))
}

// failed records a failed authentication of key.
func (l *failureLimiter) failed(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.sources[key]
	if lim == nil {
		if len(l.sources) >= maxTrackedSources {
			l.sweep(now)
		}
		lim = rate.NewLimiter(rate.Every(l.every), l.burst)
		l.sources[key] = lim
	}
	lim.AllowN(now, 1)
}

// sweep forgets keys whose bucket has refilled (they are as good as new)
// and, if that is not enough, arbitrary others.
func (l *failureLimiter) sweep(now time.Time) {
	for k, lim := range l.sources {
		if lim.TokensAt(now) >= float64(l.burst) {
			delete(l.sources, k)
		}
	}
	for k := range l.sources {
		if len(l.sources) < maxTrackedSources {
			break
		}
		delete(l.sources, k)
	}
}
