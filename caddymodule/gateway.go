package caddymodule

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/ssogate/ssogate/caddymodule/pages"
	"github.com/ssogate/ssogate/caddymodule/scim"
	"github.com/ssogate/ssogate/caddymodule/session"
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
	// (X-Forwarded-User, -Email, -Groups, -Preferred-Username).
	HeaderPreset string `json:"header_preset,omitempty"`

	// Per-header overrides of the preset; `-` leaves a header out.
	Headers *HeaderNames `json:"headers,omitempty"`

	app      *App
	logger   *zap.Logger
	headers  HeaderNames
	stripped []string
	public   caddyhttp.MatchPath
	guarded  caddyhttp.MatchPath
	pages    *pages.Renderer
	secure   bool

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

	rechecked recheckCache
}

// CaddyModule returns the Caddy module information.
func (Gateway) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.sso_gateway",
		New: func() caddy.Module { return new(Gateway) },
	}
}

// Provision sets the handler up.
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
	if g.Prefix == "" {
		g.Prefix = DefaultPrefix
	}
	g.Prefix = "/" + strings.Trim(g.Prefix, "/")
	if g.Prefix == "/" {
		return errors.New("sso_gateway: prefix must not be /")
	}
	g.app.registerPrefix(g.Prefix)

	h, ok := resolveHeaders(g.HeaderPreset, g.Headers)
	if !ok {
		return fmt.Errorf("sso_gateway: unknown header_preset %q (want %q or %q)", g.HeaderPreset, PresetDefault, PresetOAuth2Proxy)
	}
	g.headers = h
	g.stripped = strippedHeaders(h)

	g.public = caddyhttp.MatchPath(g.PublicPaths)
	if err := g.public.Provision(ctx); err != nil {
		return fmt.Errorf("sso_gateway: public_paths: %w", err)
	}
	g.guarded = caddyhttp.MatchPath(g.ProtectedPaths)
	if err := g.guarded.Provision(ctx); err != nil {
		return fmt.Errorf("sso_gateway: protected_paths: %w", err)
	}

	g.secure = g.app.baseURL.Scheme == "https"
	if !g.secure && !isLoopbackHost(g.app.baseURL.Hostname()) {
		return fmt.Errorf("sso_gateway: base_url %s must be https (plain http is allowed only on loopback hosts, for local testing)", g.app.baseURL)
	}

	g.pages, err = pages.New()
	if err != nil {
		return err
	}
	g.lazy = &gatewayState{}
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
		var limits scim.Limits
		if g.app.SCIMLimits != nil {
			limits = *g.app.SCIMLimits
		}
		sc, err := scim.New(scim.Config{
			Store:    st,
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
		s.store, s.sessions, s.spKey, s.spCert, s.scim = st, sm, key, cert, sc
	})
	return s, s.err
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	// Before anything else, so no path (public, gateway, error) ever
	// passes on a client-supplied identity.
	for _, h := range g.stripped {
		r.Header.Del(h)
	}

	if p := r.URL.Path; p == g.Prefix || strings.HasPrefix(p, g.Prefix+"/") {
		return g.serveOwn(w, r)
	}
	if !g.needsSession(r) {
		return next.ServeHTTP(w, r)
	}

	st, err := g.state()
	if err != nil {
		return caddyhttp.Error(http.StatusServiceUnavailable, err)
	}
	id, ok := g.authenticate(st, r)
	if !ok {
		g.challenge(w, r)
		return nil
	}
	g.headers.apply(r, id)
	return next.ServeHTTP(w, r)
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
	_ caddyhttp.MiddlewareHandler = (*Gateway)(nil)
)
