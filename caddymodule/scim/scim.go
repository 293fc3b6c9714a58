// Package scim serves SCIM 2.0 provisioning (RFC 7643/7644) per
// organization, so that the IdP keeps the gateway's users and groups
// current: {prefix}/scim/{org}/v2/Users, /Groups, /ServiceProviderConfig,
// /ResourceTypes and /Schemas, with the core User and Group schemas and the
// enterprise User extension.
//
// The protocol (routing, schema validation, PATCH parsing, filter parsing,
// list and error responses) is github.com/elimity-com/scim's; this package
// adds what it leaves to the application: per-organization bearer-token
// authentication, the resource handlers over the store, index-backed
// filters, the application of PATCH operations, and a few normalisations
// of what Okta and Entra ID actually send where the library is stricter
// than they are (see normalize.go).
//
// Every request is authenticated before anything else is looked at; a
// missing or wrong token and an unknown organization get the same 401, so
// the endpoint does not reveal which organizations exist. The organization
// then comes from the URL only, and every handler scopes every store call
// by it: one organization's token can never reach another's data.
package scim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	elimity "github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/optional"
	"github.com/elimity-com/scim/schema"
	"go.uber.org/zap"

	"github.com/ssogate/ssogate/store"
)

const (
	// maxResults is the largest page a list request gets (and the page
	// size when it asks for none).
	maxResults = 100
	// touchEvery is how stale the token's last-used time may get before a
	// request refreshes it.
	touchEvery = time.Minute
)

// orgIDPattern is the organization slug syntax (SPEC §2); anything else in
// the org segment cannot be an organization.
var orgIDPattern = regexp.MustCompile(`^[a-z0-9-]{2,40}$`)

// Config configures the SCIM server.
type Config struct {
	Store *store.Store
	// BaseURL is the gateway's external URL and Prefix its route prefix;
	// an org's SCIM base URL is BaseURL + Prefix + "/scim/{org}/v2".
	BaseURL string
	Prefix  string
	// ClientIP returns the request's client address (Caddy's view, which
	// honours trusted proxies).
	ClientIP func(*http.Request) string
	Logger   *zap.Logger

	// Limiter throttles failed authentications per source address and
	// organization; its counts are in the store, so servers on one
	// backend (a reload's old and new config, other replicas) share them.
	// Nil means one on Store with FailureBurst and FailureEvery: after
	// FailureBurst failures, a source gets one more failure per
	// FailureEvery and 429 for the others (zero values mean 10 and 6
	// seconds).
	Limiter      *FailureLimiter
	FailureBurst int
	FailureEvery time.Duration
	// Limits caps each organization's requests (zero values: defaults).
	Limits Limits
	// Now is the clock (time.Now when nil); tests move it.
	Now func() time.Time
}

// Server serves every organization's SCIM endpoints.
type Server struct {
	cfg     Config
	log     *zap.Logger
	args    elimity.ServerArgs
	users   *userHandler
	groups  *groupHandler
	limiter *FailureLimiter
	limits  Limits
	slots   *orgSlots
	locks   writeLocks
	orgs    orgCache
	// dummyHash is compared against when the organization does not exist
	// or has no token, so that the answer takes as long as a real miss.
	dummyHash [32]byte
}

// New builds the server.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("scim: no store")
	}
	if _, err := url.Parse(cfg.BaseURL); err != nil {
		return nil, errors.New("scim: invalid base URL")
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.ClientIP == nil {
		cfg.ClientIP = func(r *http.Request) string { return r.RemoteAddr }
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Limiter == nil {
		cfg.Limiter = NewFailureLimiter(cfg.Store, cfg.FailureBurst, cfg.FailureEvery)
	}
	if err := cfg.Limits.Validate(); err != nil {
		return nil, fmt.Errorf("scim: limits: %w", err)
	}
	limits := cfg.Limits.WithDefaults()
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger,
		limiter: cfg.Limiter,
		limits:  limits,
		slots:   newOrgSlots(limits.MaxConcurrent),
	}
	s.users = &userHandler{srv: s}
	s.groups = &groupHandler{srv: s}
	s.args = elimity.ServerArgs{
		ServiceProviderConfig: &elimity.ServiceProviderConfig{
			AuthenticationSchemes: []elimity.AuthenticationScheme{{
				Type:        elimity.AuthenticationTypeOauthBearerToken,
				Name:        "OAuth Bearer Token",
				Description: "The organization's SCIM token, sent as Authorization: Bearer <token>. The gateway's operator or the organization's admin generates it; rotating it revokes the previous one.",
				SpecURI:     optional.NewString("https://www.rfc-editor.org/rfc/rfc6750"),
				Primary:     true,
			}},
			MaxResults:       maxResults,
			SupportFiltering: true,
			SupportPatch:     true,
		},
		ResourceTypes: []elimity.ResourceType{
			{
				ID:               optional.NewString("User"),
				Name:             "User",
				Endpoint:         "/Users",
				Description:      optional.NewString("User Account"),
				Schema:           userSchema,
				SchemaExtensions: []elimity.SchemaExtension{{Schema: enterpriseSchema}},
				Handler:          s.users,
			},
			{
				ID:          optional.NewString("Group"),
				Name:        "Group",
				Endpoint:    "/Groups",
				Description: optional.NewString("Group"),
				Schema:      groupSchema,
				Handler:     s.groups,
			},
		},
	}
	return s, nil
}

// Schemas, built once: the library's constructors allocate them anew on
// every call.
var (
	userSchema       = schema.CoreUserSchema()
	groupSchema      = schema.CoreGroupSchema()
	enterpriseSchema = schema.ExtensionEnterpriseUser()
)

// ctxKey carries the authenticated organization's ID to the handlers.
type ctxKey struct{}

// orgOf returns the organization the request was authenticated for. The
// handlers only ever run behind ServeHTTP, which sets it.
func orgOf(r *http.Request) string {
	id, _ := r.Context().Value(ctxKey{}).(string)
	return id
}

// ServeHTTP serves a request whose path starts with Prefix + "/scim/".
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	rest := strings.TrimPrefix(r.URL.Path, s.cfg.Prefix+"/scim/")
	orgID, sub, _ := strings.Cut(rest, "/")
	sub = "/" + sub

	// Authentication comes first: nothing about the path, the body or the
	// organization is looked at before the token is accepted (see admit).
	org := s.admit(w, r, orgID)
	if org == nil {
		return
	}
	now := s.cfg.Now()
	if now.Sub(org.SCIMTokenLastUsed) >= touchEvery {
		if err := s.cfg.Store.TouchSCIMToken(org.ID, now); err != nil {
			s.log.Warn("recording SCIM token use", zap.String("org", org.ID), zap.Error(err))
		} else {
			s.orgs.touched(org.ID, now)
		}
	}

	if !route(w, r, sub) {
		return
	}
	if err := s.limits.checkQuery(r); err != nil {
		writeError(w, asScimError(err))
		return
	}
	release, ok := s.slots.acquire(r.Context(), org.ID, isHeavy(r.Method, sub, r.ContentLength))
	if !ok {
		w.Header().Set("Retry-After", strconv.Itoa(slotRetryAfterSec))
		writeError(w, scimerrors.ScimError{Status: http.StatusTooManyRequests, Detail: "Too many requests of this organization in progress; try again shortly."})
		return
	}
	defer release()
	if s.discovery(w, r, org.ID, sub) {
		return
	}
	if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
		body, err := s.limits.checkBody(w, r, sub)
		if err != nil {
			writeError(w, asScimError(err))
			return
		}
		if r.Method == http.MethodPatch {
			if err := checkPatchRequest(body); err != nil {
				writeError(w, asScimError(err))
				return
			}
		}
		body = normalizeRequest(r.Method, sub, body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
	} else if r.ContentLength > 0 {
		// GET and DELETE take no body; one is not read, and not taken.
		writeError(w, badSyntax("This request takes no body."))
		return
	}

	// Hand the request to the library with the path it expects, the
	// organization in the context, and a list filter parsed here
	// (filterparse.go).
	ctx := context.WithValue(r.Context(), ctxKey{}, org.ID)
	u := *r.URL
	u.Path, u.RawPath = sub, ""
	if core, exts, ok := resourceSchemas(sub); ok && isList(r.Method, sub) {
		raw, found := "", false
		if r.Method == http.MethodGet {
			q, _ := urlQuery(r) // checked by checkQuery
			if raw = q.Get("filter"); raw != "" {
				found = true
				q.Del("filter")
				u.RawQuery = q.Encode()
			}
		} else {
			body, _ := io.ReadAll(r.Body) // the bytes read above
			body, raw, found = takeSearchFilter(body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
		}
		if found {
			expr, err := s.limits.parseFilter(raw, core, exts)
			if err != nil {
				writeError(w, asScimError(err))
				return
			}
			ctx = context.WithValue(ctx, filterKey{}, expr)
		}
	}
	inner := r.WithContext(ctx)
	inner.URL = &u

	srv, err := elimity.NewServer(&s.args,
		elimity.WithBaseURL(s.BaseURL(org.ID)),
		elimity.WithLogger(libLogger{s.log}))
	if err != nil {
		s.log.Error("building SCIM server", zap.Error(err))
		writeError(w, scimerrors.ScimErrorInternal)
		return
	}
	if isList(r.Method, sub) {
		lw := &listWriter{ResponseWriter: w}
		srv.ServeHTTP(lw, inner)
		lw.finish()
		return
	}
	srv.ServeHTTP(w, inner)
}

// BaseURL returns an organization's SCIM base URL.
func (s *Server) BaseURL(orgID string) string {
	return strings.TrimRight(s.cfg.BaseURL, "/") + s.cfg.Prefix + "/scim/" + url.PathEscape(orgID) + "/v2"
}

// audit records a SCIM event. A failure to record is logged: the change
// it describes has happened.
func (s *Server) audit(orgID, source, action, outcome string, details map[string]string) {
	e := s.auditEvent(orgID, source, action, outcome, details)
	if err := s.cfg.Store.AppendAudit(e); err != nil {
		s.log.Error("recording audit event", zap.String("org", orgID), zap.String("action", action), zap.Error(err))
	}
}

// auditEvent is the audit event of a SCIM request.
func (s *Server) auditEvent(orgID, source, action, outcome string, details map[string]string) *store.AuditEvent {
	return &store.AuditEvent{
		Time:     s.cfg.Now().UTC(),
		OrgID:    orgID,
		Actor:    "scim",
		Action:   action,
		Outcome:  outcome,
		SourceIP: source,
		Details:  details,
	}
}

// libLogger adapts zap to the library's logger, which it calls with a
// message followed by key/value pairs.
type libLogger struct{ l *zap.Logger }

func (l libLogger) Error(args ...any) {
	if len(args) == 0 {
		return
	}
	msg, ok := args[0].(string)
	if !ok {
		l.l.Sugar().Error(args...)
		return
	}
	l.l.Sugar().Errorw(msg, args[1:]...)
}
