package caddymodule

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/ssogate/ssogate/caddymodule/pages"
	"github.com/ssogate/ssogate/caddymodule/scim"
	"github.com/ssogate/ssogate/caddymodule/session"
	"github.com/ssogate/ssogate/caddymodule/upstreamjwt"
	"github.com/ssogate/ssogate/store"
)

func init() {
	caddy.RegisterModule(Gateway{})
}

// Gateway is the `sso_gateway` HTTP handler. It serves the sign-in routes
// under its prefix, and lets every other request through only with a live
// session, adding identity headers for the upstream. Incoming copies of
// identity headers are removed from every request, signed in or not.
type Gateway struct {
	// Route prefix of the gateway's own pages and endpoints. Default: /sso.
	Prefix string `json:"prefix,omitempty"`

	// Paths that need no session (Caddy path matcher patterns, e.g.
	// `/health`, `/static/*`). Identity headers are still stripped there.
	PublicPaths []string `json:"public_paths,omitempty"`

	// When set, only these paths need a session; everything else is public.
	// Default: every path outside public_paths.
	ProtectedPaths []string `json:"protected_paths,omitempty"`

	// Identity header names: `default` (X-SSO-*) or `oauth2-proxy`
	// (X-Forwarded-User, -Email, -Groups, -Preferred-Username, each also
	// as X-Auth-Request-*, with oauth2-proxy's meanings: X-Forwarded-User
	// is the IdP's identifier of the user, qualified by the org).
	HeaderPreset string `json:"header_preset,omitempty"`

	// Per-header overrides of the preset; `-` leaves a header out.
	Headers *HeaderNames `json:"headers,omitempty"`

	// The gateway protects only the requests that reach it. When a route
	// matcher (the directive's own, or an enclosing `handle`/`route`
	// block's) lets only some requests reach it, or an earlier route
	// answers some with the app (reverse_proxy, file_server), those go on
	// without sign-in; the config then loads with a warning, and this
	// option says that is intended and silences it. A matcher or earlier
	// route that keeps the gateway from its own endpoints is refused
	// either way. Host matchers (site addresses) need no opt-in.
	// Default: false.
	AllowBypass bool `json:"allow_bypass,omitempty"`

	// The origin (scheme://host:port) that serves the configurator, the
	// users page and the org admin API instead of this site: base_url's
	// scheme and host on another port, where a second site runs
	// sso_gateway with admin_only. Here those routes then redirect there
	// (pages) or answer 404 (API), so that no script of the application
	// shares an origin with them. Sessions are host cookies, which
	// browsers share across ports: one sign-in serves both sites.
	// Default: none (the configurator is served here).
	AdminOrigin string `json:"admin_origin,omitempty"`

	// This site serves only the gateway's own routes (sign-in, the
	// configurator and its API): any other request is sent to the
	// configurator or answered 404, never passed on. For the site at
	// another site's admin_origin. Default: false.
	AdminOnly bool `json:"admin_only,omitempty"`

	// Also send the identity as a signed JWT (see SignedIdentity).
	// Default: off.
	SignedIdentity *SignedIdentity `json:"signed_identity,omitempty"`

	app      *App
	logger   *zap.Logger
	headers  HeaderNames
	stripped []string
	public   caddyhttp.MatchPath
	guarded  caddyhttp.MatchPath
	pages    *pages.Renderer
	secure   bool
	hsts     string   // the Strict-Transport-Security value, or ""
	adminURL *url.URL // parsed AdminOrigin, or nil

	// lazy holds what needs the store, which may not be open at Provision
	// (see App.Store).
	lazy *gatewayState
}

type gatewayState struct {
	once     sync.Once
	err      error
	store    *store.Store
	sessions *session.Manager
	spKey    crypto.Signer
	spCert   *x509.Certificate
	scim     *scim.Server

	jwtKeys   *upstreamjwt.Keyring // nil unless signed_identity
	jwtSigner *upstreamjwt.Signer

	rechecked recheckCache
	// leaderHook, set by tests only, runs before a full re-check that
	// other requests may join.
	leaderHook func(*recheckFlight)
}

// CaddyModule returns the Caddy module information.
func (Gateway) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.sso_gateway",
		New: func() caddy.Module { return new(Gateway) },
	}
}

// Provision expands placeholders and sets the handler up; Validate checks
// the options.
func (g *Gateway) Provision(ctx caddy.Context) error {
	g.logger = ctx.Logger()
	appIface, err := ctx.App("sso")
	if err != nil {
		return fmt.Errorf("sso_gateway: loading sso app: %w", err)
	}
	g.app = appIface.(*App)
	if g.app.baseURL == nil {
		return errors.New("sso_gateway: the sso app has no base_url; set it in the global `sso` options block")
	}

	x := newExpander()
	x.expand("prefix", &g.Prefix, false)
	x.expandAll("public_paths", g.PublicPaths)
	x.expandAll("protected_paths", g.ProtectedPaths)
	x.expand("header_preset", &g.HeaderPreset, false)
	x.expand("admin_origin", &g.AdminOrigin, false)
	if g.Headers != nil {
		for i, p := range g.Headers.pointers() {
			x.expand("header "+identityFieldNames[i], p, false)
		}
	}
	if si := g.SignedIdentity; si != nil {
		x.expand("signed_identity header", &si.Header, false)
		x.expandAll("signed_identity audience", si.Audience)
	}
	if x.err != nil {
		return fmt.Errorf("sso_gateway: %w", x.err)
	}
	if g.Prefix == "" {
		g.Prefix = DefaultPrefix
	}
	g.app.registerPrefix(g.Prefix)

	// An unknown preset is reported by Validate.
	g.headers, _ = resolveHeaders(g.HeaderPreset, g.Headers)
	g.provisionSignedIdentity()
	if g.SignedIdentity != nil {
		g.stripped = strippedHeaders(g.headers, g.SignedIdentity.Header)
	} else {
		g.stripped = strippedHeaders(g.headers)
	}

	// Copies: the matchers lowercase their patterns in place.
	g.public = slices.Clone(caddyhttp.MatchPath(g.PublicPaths))
	if err := g.public.Provision(ctx); err != nil {
		return fmt.Errorf("sso_gateway: public_paths: %w", err)
	}
	g.guarded = slices.Clone(caddyhttp.MatchPath(g.ProtectedPaths))
	if err := g.guarded.Provision(ctx); err != nil {
		return fmt.Errorf("sso_gateway: protected_paths: %w", err)
	}

	g.secure = g.app.baseURL.Scheme == "https"
	// Validate reports a bad admin_origin.
	g.adminURL, _ = parseAdminOrigin(g.AdminOrigin, g.app.baseURL)
	if g.secure && !g.app.DisableHSTS && g.app.HSTSMaxAge > 0 {
		g.hsts = "max-age=" + strconv.FormatInt(int64(time.Duration(g.app.HSTSMaxAge)/time.Second), 10)
	}
	if len(g.PublicPaths) > 0 && g.public.Match(probe(http.MethodGet, "/", g.app.baseURL, nil)) &&
		g.public.Match(probe(http.MethodGet, "/any/page/of/the/app", g.app.baseURL, nil)) {
		g.logger.Warn("public_paths make every path public: no request to the app needs a session",
			zap.Strings("public_paths", g.PublicPaths))
	}
	g.pages, err = pages.New()
	if err != nil {
		return err
	}
	g.lazy = &gatewayState{}
	return nil
}

// Validate checks every option, naming it and its value in the error.
func (g *Gateway) Validate() error {
	if err := g.validate(); err != nil {
		return fmt.Errorf("sso_gateway: %w", err)
	}
	return nil
}

func (g *Gateway) validate() error {
	if err := checkPrefix(g.Prefix); err != nil {
		return err
	}
	if err := checkPathPatterns("public_paths", g.PublicPaths); err != nil {
		return err
	}
	if err := checkPathPatterns("protected_paths", g.ProtectedPaths); err != nil {
		return err
	}
	h, ok := resolveHeaders(g.HeaderPreset, g.Headers)
	if !ok {
		return fmt.Errorf("header_preset %q: unknown (want %q or %q)", g.HeaderPreset, PresetDefault, PresetOAuth2Proxy)
	}
	if err := checkHeaders(g.Headers, h); err != nil {
		return err
	}
	if err := g.validateSignedIdentity(); err != nil {
		return err
	}
	if g.AdminOrigin != "" {
		if g.AdminOnly {
			return errors.New("admin_origin and admin_only: set admin_origin on the application's site and admin_only on the configurator's")
		}
		if _, err := parseAdminOrigin(g.AdminOrigin, g.app.baseURL); err != nil {
			return err
		}
	}
	if !g.secure && !isLoopbackHost(g.app.baseURL.Hostname()) {
		return fmt.Errorf("base_url %s must be https (plain http is allowed only on loopback hosts, for local testing)", g.app.baseURL)
	}
	return nil
}

// state opens what depends on the store, once.
func (g *Gateway) state() (*gatewayState, error) {
	s := g.lazy
	s.once.Do(func() {
		st, err := g.app.Store()
		if err != nil {
			s.err = err
			return
		}
		keys, err := g.app.sessionKeys()
		if err != nil {
			s.err = err
			return
		}
		sm, err := session.New(session.Config{
			Store:    st,
			Keys:     keys,
			Secure:   g.secure,
			Lifetime: time.Duration(g.app.SessionLifetime),
			Idle:     time.Duration(g.app.SessionIdleTimeout),
		})
		if err != nil {
			s.err = err
			return
		}
		key, cert, err := spKeyPair(st)
		if err != nil {
			s.err = err
			return
		}
		ps, err := g.app.processState()
		if err != nil {
			s.err = err
			return
		}
		var limits scim.Limits
		if g.app.SCIMLimits != nil {
			limits = *g.app.SCIMLimits
		}
		sc, err := scim.New(scim.Config{
			Store:    st,
			Limiter:  ps.scimFailures,
			BaseURL:  g.app.baseURL.String(),
			Prefix:   g.Prefix,
			ClientIP: clientIP,
			Logger:   g.logger.Named("scim"),
			Limits:   limits,
		})
		if err != nil {
			s.err = err
			return
		}
		if si := g.SignedIdentity; si != nil {
			s.jwtKeys = upstreamjwt.NewKeyring(st, 0)
			if s.jwtSigner, err = upstreamjwt.NewSigner(s.jwtKeys, g.issuer(), si.Audience); err != nil {
				s.err = err
				return
			}
		}
		s.store, s.sessions, s.spKey, s.spCert, s.scim = st, sm, key, cert, sc
	})
	return s, s.err
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	// Before anything else, so no path (public, gateway, error) ever
	// passes on a client-supplied identity.
	g.stripIdentityHeaders(r.Header)

	if p := r.URL.Path; p == g.Prefix || strings.HasPrefix(p, g.Prefix+"/") {
		g.setHSTS(w)
		return g.serveOwn(w, r)
	}
	if g.AdminOnly {
		g.setHSTS(w)
		g.serveAdminSiteOther(w, r)
		return nil
	}
	if !g.needsSession(r) {
		stripOwnCookies(r.Header)
		return next.ServeHTTP(w, r)
	}

	st, err := g.state()
	if err != nil {
		return caddyhttp.Error(http.StatusServiceUnavailable, err)
	}
	id, ok, err := g.authenticate(st, r)
	if err != nil {
		g.setHSTS(w)
		g.storeUnavailable(w, wantsJSON(r), err)
		return nil
	}
	if !ok {
		g.setHSTS(w)
		g.challenge(w, r)
		return nil
	}
	// After authenticate, which reads the session cookie: the upstream
	// never sees the gateway's cookies, so its logs cannot leak them.
	stripOwnCookies(r.Header)
	// The token first: a request that fails here goes on to the site's
	// handle_errors, which may proxy it to the app, so it must carry no
	// identity the gateway could not vouch for as configured.
	var tok string
	if g.SignedIdentity != nil {
		if tok, err = g.signedToken(st, id); err != nil {
			g.logger.Error("signing the upstream identity token", zap.Error(err))
			return caddyhttp.Error(http.StatusServiceUnavailable, err)
		}
	}
	g.headers.apply(r, id)
	if tok != "" {
		r.Header[g.SignedIdentity.Header] = []string{tok}
	}
	return next.ServeHTTP(w, r)
}

// stripIdentityHeaders removes every incoming header the upstream could
// take for identity: the configured and preset names, and their spellings
// with underscores or dots (X_SSO_User, X.SSO.User), which CGI-style
// backends (PHP, Rails, Django, WSGI) fold onto the dashed name. Caddy
// drops such headers by default, but not those an operator lists in
// expected_underscore_headers or expected_dot_headers. Names compare
// ASCII case-insensitively with `_` and `.` read as `-`.
func (g *Gateway) stripIdentityHeaders(h http.Header) {
	// The names are canonical (strippedHeaders), as the server makes the
	// incoming ones, so they are deleted as they are: Header.Del would
	// canonicalize each again, on every request.
	for _, name := range g.stripped {
		delete(h, name)
	}
	for k := range h {
		if !strings.ContainsAny(k, "_.") {
			continue // Del above covered every other spelling
		}
		for _, name := range g.stripped {
			if sameHeaderName(k, name) {
				delete(h, k)
				break
			}
		}
	}
}

// sameHeaderName compares header names ASCII case-insensitively, reading
// `_` and `.` as `-`. Header names are ASCII tokens; no Unicode folding
// applies.
func sameHeaderName(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if headerNameByte(a[i]) != headerNameByte(b[i]) {
			return false
		}
	}
	return true
}

func headerNameByte(c byte) byte {
	switch {
	case c == '_' || c == '.':
		return '-'
	case 'A' <= c && c <= 'Z':
		return c + ('a' - 'A')
	}
	return c
}

// ownCookies are the names of every cookie the gateway sets, in both
// spellings (the `__Host-` prefix is used when base_url is https).
var ownCookies = func() map[string]bool {
	m := map[string]bool{}
	for _, base := range append(session.CookieNames(), preCSRFCookie, deviceCookie, sloCookie) {
		m[base] = true
		m["__Host-"+base] = true
	}
	return m
}()

// stripOwnCookies removes the gateway's cookies from the Cookie header
// and keeps the application's cookies as the browser sent them. A cookie
// is the gateway's by its name as net/http reads it (spaces around it
// trimmed), so none that the gateway would take for its own goes on.
// Headers with nothing of the gateway's are left as they are, without
// allocating: that is most requests to an app with cookies of its own.
func stripOwnCookies(h http.Header) {
	lines := h["Cookie"]
	own := false
	for _, line := range lines {
		if hasOwnCookie(line) {
			own = true
			break
		}
	}
	if !own {
		return
	}
	var kept []string
	for _, line := range lines {
		var b strings.Builder
		for rest := line; rest != ""; {
			var part string
			part, rest, _ = strings.Cut(rest, ";")
			if part = strings.TrimSpace(part); part == "" || isOwnCookie(part) {
				continue
			}
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			b.WriteString(part)
		}
		if b.Len() > 0 {
			kept = append(kept, b.String())
		}
	}
	if len(kept) == 0 {
		delete(h, "Cookie")
		return
	}
	h["Cookie"] = kept
}

func hasOwnCookie(line string) bool {
	for line != "" {
		var part string
		part, line, _ = strings.Cut(line, ";")
		if isOwnCookie(part) {
			return true
		}
	}
	return false
}

// isOwnCookie tells whether one name=value pair of a Cookie header is a
// gateway cookie.
func isOwnCookie(part string) bool {
	name, _, _ := strings.Cut(part, "=")
	return ownCookies[textproto.TrimString(name)]
}

// setHSTS adds Strict-Transport-Security to what the gateway answers
// itself over https, so that a browser that once reached its pages never
// sends a session cookie or a password over plain http to that host.
func (g *Gateway) setHSTS(w http.ResponseWriter) {
	if g.hsts != "" {
		w.Header().Set("Strict-Transport-Security", g.hsts)
	}
}

func (g *Gateway) needsSession(r *http.Request) bool {
	if len(g.PublicPaths) > 0 && g.public.Match(r) {
		return false
	}
	if len(g.ProtectedPaths) > 0 {
		return g.guarded.Match(r)
	}
	return true
}

// challenge answers a request that has no valid session: browsers go to
// the sign-in page and come back to where they were; API clients get 401.
func (g *Gateway) challenge(w http.ResponseWriter, r *http.Request) {
	if wantsHTML(r) {
		target := g.Prefix + "/login"
		if ret := r.URL.RequestURI(); ret != "/" {
			target += "?return=" + urlQueryEscape(ret)
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, target, http.StatusFound)
		return
	}
	writeJSONError(w, http.StatusUnauthorized, "authentication required")
}

// wantsHTML tells a browser navigation from an API call.
func wantsHTML(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, "{\"error\":%q}\n", msg)
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Gateway)(nil)
	_ caddy.Validator             = (*Gateway)(nil)
	_ caddyhttp.MiddlewareHandler = (*Gateway)(nil)
)

// storeUnavailable answers a request the store could not check (a
// database outage): refused, never passed on unchecked, with a page that
// says to try again; the session is kept for when the store is back.
func (g *Gateway) storeUnavailable(w http.ResponseWriter, isJSON bool, err error) {
	g.logger.Error("session check failed: the store did not answer", zap.Error(err))
	w.Header().Set("Retry-After", "5")
	if isJSON {
		writeJSONError(w, http.StatusServiceUnavailable, "temporarily unavailable; try again")
		return
	}
	g.message(w, http.StatusServiceUnavailable, "Temporarily unavailable",
		"The gateway cannot check your session right now.", "Try again in a moment; you are still signed in.", true)
}
