package scim

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	scimerrors "github.com/elimity-com/scim/errors"
	"go.uber.org/zap"

	"github.com/ssogate/ssogate/caddymodule/local"
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

// admit authenticates a request for orgID and returns its organization,
// or writes the refusal and returns nil.
//
// The token is checked first, and only failures are throttled: a request
// that carries the organization's token always passes, whatever others
// did from its address (an IdP's egress addresses are shared by all its
// customers, so keying the throttle by address would let one tenant, or
// anyone on that cloud, stall another's provisioning). A source whose
// failures exceeded the limit gets 429 instead of 401 for further
// failures. That 429 is no oracle worth having: a token is 256 random
// bits, so the throttle is not what stops guessing; it bounds what a
// flood of failures costs: one store read of the organization, one
// SHA-256 of at most maxTokenLen bytes, a limiter transaction (a write
// only for a failure within the limit; none at all once this process has
// seen the bucket empty, see store.TakeToken) and an aggregated audit
// count (no audit write per request). Limiter transactions share the
// store's bound on throttle transactions in flight: beyond it a failure
// is answered 503 at once (see store.ErrThrottleBusy).
// Nothing about the path or the body is looked at before the token is
// accepted.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, orgID string) *store.Org {
	org, why := s.authenticate(orgID, r.Header.Get("Authorization"))
	switch why {
	case "":
		return org
	case reasonInternal:
		writeError(w, scimerrors.ScimErrorInternal)
		return nil
	}
	source := s.cfg.ClientIP(r)
	// Failures against an organization that does not exist share one key
	// per source, so made-up organization names cannot multiply keys.
	key := local.SourceKey(source) + "\x00"
	if org != nil {
		key += org.ID
	}
	allowed, retry, err := s.limiter.fail(key, s.cfg.Now())
	busy := errors.Is(err, store.ErrThrottleBusy)
	if err != nil && !busy {
		// Uncounted failures would be unthrottled ones: refuse with an
		// error instead, which gives a guesser nothing either.
		s.log.Error("SCIM authentication failed and could not be counted", zap.String("org", orgID), zap.String("remote_ip", source), zap.Error(err))
		writeError(w, scimerrors.ScimErrorInternal)
		return nil
	}
	if org != nil {
		details := map[string]string{"reason": why}
		switch {
		case busy:
			details["throttled"] = "busy"
		case !allowed:
			details["throttled"] = "yes"
		}
		s.auditFailure(org.ID, source, details)
	}
	if busy {
		// This process has as many throttle transactions under way as it
		// allows: a flood of failures must not take the database
		// connections that signed-in traffic needs. The failure goes
		// uncounted, but the client learns no more than from a 401, and a
		// valid token never gets here (tokens are 256 random bits: the
		// limiter bounds cost, not guessing).
		s.log.Debug("SCIM authentication failed while the limiter was busy", zap.String("org", orgID), zap.String("reason", why), zap.String("remote_ip", source))
		w.Header().Set("Retry-After", "1")
		writeError(w, scimerrors.ScimError{Status: http.StatusServiceUnavailable, Detail: "Too many failed authentications are being handled; try again later."})
		return nil
	}
	if !allowed {
		s.log.Debug("SCIM authentication failed while throttled", zap.String("org", orgID), zap.String("reason", why), zap.String("remote_ip", source))
		w.Header().Set("Retry-After", strconv.Itoa(int(retry.Seconds()+0.999)))
		writeError(w, scimerrors.ScimError{Status: http.StatusTooManyRequests, Detail: "Too many failed authentications from this address; try again later."})
		return nil
	}
	s.log.Warn("SCIM authentication failed", zap.String("org", orgID), zap.String("reason", why), zap.String("remote_ip", source))
	w.Header().Set("WWW-Authenticate", `Bearer realm="SCIM", error="invalid_token"`)
	writeError(w, scimerrors.ScimError{Status: http.StatusUnauthorized, Detail: "A valid bearer token for this organization is required."})
	return nil
}

// authenticate returns the organization orgID names, if it exists, and
// why the Authorization header does not authenticate for it ("" when it
// does). The token is compared by its SHA-256 (the only form stored) in
// constant time, and a hash is compared even when there is no
// organization or token to compare with.
func (s *Server) authenticate(orgID, header string) (*store.Org, string) {
	token, hasToken := bearerToken(header)
	var org *store.Org
	if orgIDPattern.MatchString(orgID) {
		o, err := s.orgs.get(s.cfg.Store, orgID)
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
		return org, reasonNoToken
	case len(org.SCIMTokenHash) != sha256.Size:
		return org, reasonNoSCIM
	case !match:
		return org, reasonBadToken
	}
	return org, ""
}

// auditFailure records a failed authentication, aggregated: a flood of
// them becomes one event per kind and minute with a count.
func (s *Server) auditFailure(orgID, source string, details map[string]string) {
	err := s.cfg.Store.AppendAuditAggregated(&store.AuditEvent{
		Time:     s.cfg.Now().UTC(),
		OrgID:    orgID,
		Actor:    "scim",
		Action:   "scim.auth",
		Outcome:  "denied",
		SourceIP: source,
		Details:  details,
	})
	if err != nil {
		s.log.Error("recording audit event", zap.String("org", orgID), zap.String("action", "scim.auth"), zap.Error(err))
	}
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

// maxTrackedSources bounds the keys the limiter keeps in the store.
const maxTrackedSources = 10_000

// limiterScope is the limiter's scope among the store's throttle records.
const limiterScope = "scim-auth"

// FailureLimiter slows down repeated authentication failures: each key
// (source address and organization) has a token bucket that failures
// drain; once it is empty, further failures are answered 429 until it
// refills. Successes neither need nor take a token. Keying by
// organization too means that a misconfigured or hostile tenant behind an
// IdP's shared egress addresses cannot make another organization's
// failures throttled sooner.
//
// The buckets are records of the store (store.TakeToken), so every
// gateway process on the same backend drains the same buckets (N replicas
// allow no more failures than one) and neither a reload nor a restart
// refills them. It is safe for concurrent use.
type FailureLimiter struct {
	st      *store.Store
	burst   int
	every   time.Duration
	maxKeys int // maxTrackedSources; tests lower it
}

// NewFailureLimiter returns a limiter that keeps its buckets in st and
// allows burst failures per key, then one per every. Non-positive values
// mean 10 and 6 seconds.
func NewFailureLimiter(st *store.Store, burst int, every time.Duration) *FailureLimiter {
	if burst <= 0 {
		burst = 10
	}
	if every <= 0 {
		every = 6 * time.Second
	}
	return &FailureLimiter{st: st, burst: burst, every: every, maxKeys: maxTrackedSources}
}

// fail records a failure of key at now. It reports whether the failure
// was within the limit (answer 401) or not (answer 429, and retry after
// the duration returned); a failure over the limit takes no token, so a
// flood does not extend the wait.
func (l *FailureLimiter) fail(key string, now time.Time) (bool, time.Duration, error) {
	ok, retry, err := l.st.TakeToken(limiterScope, key, l.burst, l.every, l.maxKeys, now)
	if err != nil {
		return false, 0, fmt.Errorf("counting SCIM authentication failure: %w", err)
	}
	return ok, retry, nil
}
