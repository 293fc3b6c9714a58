package caddymodule

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// The gateway protects only the requests that reach it. A route matcher on
// it, or on a route that encloses it (`handle /app/* { sso_gateway … }`),
// sends every request it does not match on to the next handlers, usually
// reverse_proxy, without sign-in and without the removal of client-sent
// identity headers; so does a route before it that answers with the app
// (`handle /public/* { reverse_proxy … }` ahead of the gateway's
// `handle`). The checks here make that impossible to do by accident: a
// matcher that keeps the gateway from its own endpoints (`sso_gateway
// /sso`, the old README syntax) is refused, because sign-in cannot work
// and everything else is open; any other matcher but a host (a site
// address) loads with a warning unless the gateway says allow_bypass.
//
// The check probes the provisioned matchers with requests for the
// gateway's endpoints rather than reading the matchers' config, so that
// every matcher module, `not` and `expression` included, is judged by
// what it does.

// probeOrg stands for any organization ID in the probes' paths.
const probeOrg = "probe-org"

// probeClient is the address the probes come from: any client on the
// internet (TEST-NET-1), since any client could skip a gateway that runs
// only for some addresses.
const probeClient = "192.0.2.1:40000"

// gatewayEndpoints are requests the gateway itself must see: sign-in,
// SAML, SCIM, the backup login and the org admin pages. Sign-in first, so
// that the typical error names it.
func gatewayEndpoints(prefix string) [][2]string {
	return [][2]string{
		{http.MethodGet, prefix + "/login"},
		{http.MethodPost, prefix + "/login"},
		{http.MethodPost, prefix + "/saml/" + probeOrg + "/acs"},
		{http.MethodGet, prefix + "/saml/" + probeOrg + "/metadata"},
		{http.MethodPost, prefix + "/logout"},
		{http.MethodGet, prefix + "/scim/" + probeOrg + "/v2/Users"},
		{http.MethodPost, prefix + "/scim/" + probeOrg + "/v2/Users"},
		{http.MethodPatch, prefix + "/scim/" + probeOrg + "/v2/Groups/g1"},
		{http.MethodDelete, prefix + "/scim/" + probeOrg + "/v2/Users/u1"},
		{http.MethodGet, prefix + "/backup"},
		{http.MethodPost, prefix + "/invite/t1"},
		{http.MethodGet, prefix + "/admin/users"},
		{http.MethodGet, prefix + "/admin/api/session"},
	}
}

// probe builds a request to the gateway's endpoint as Caddy's server
// would hand it to the route's matchers.
func probe(method, path string, base *url.URL, srv *caddyhttp.Server) *http.Request {
	u := &url.URL{Scheme: base.Scheme, Host: base.Host, Path: path}
	r := newProbeRequest(method, u)
	r.RemoteAddr = probeClient
	if base.Scheme == "https" {
		r.TLS = &tls.ConnectionState{HandshakeComplete: true, ServerName: base.Hostname()}
	}
	r.Header.Set("Accept", "text/html")
	return caddyhttp.PrepareRequest(r, caddy.NewReplacer(), nil, srv)
}

func newProbeRequest(method string, u *url.URL) *http.Request {
	r := &http.Request{
		Method:     method,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     http.Header{},
		Host:       u.Host,
		RequestURI: u.RequestURI(),
	}
	return r.WithContext(context.Background())
}

// coverage is what one route's matcher sets mean for a gateway inside it.
type coverage struct {
	hostOnly bool      // no matcher but host matchers: a site address
	missed   [2]string // a gateway endpoint the matchers do not let through
	err      error     // a matcher failed on a probe
}

// coverageOf evaluates the matcher sets of a route that runs (or
// encloses) a gateway with the given prefix. Host matchers are taken as
// matching: they are how sites are told apart, and the site is the
// operator's choice.
func coverageOf(sets caddyhttp.MatcherSets, prefix string, base *url.URL, srv *caddyhttp.Server) (c coverage) {
	var rest caddyhttp.MatcherSets
	for _, set := range sets {
		var kept caddyhttp.MatcherSet
		for _, m := range set {
			if _, ok := m.(*caddyhttp.MatchHost); !ok {
				kept = append(kept, m)
			}
		}
		if len(kept) == 0 {
			return coverage{hostOnly: true}
		}
		rest = append(rest, kept)
	}
	if len(rest) == 0 {
		return coverage{hostOnly: true}
	}
	defer func() {
		// Third-party matchers were not written for requests that did not
		// come off the wire; a panic here must refuse the config, not
		// take the process down.
		if p := recover(); p != nil {
			c = coverage{err: fmt.Errorf("a matcher panicked on a probe request: %v", p)}
		}
	}()
	for _, ep := range gatewayEndpoints(prefix) {
		ok, err := rest.AnyMatchWithError(probe(ep[0], ep[1], base, srv))
		if err != nil {
			return coverage{err: fmt.Errorf("matching %s %s: %w", ep[0], ep[1], err)}
		}
		if !ok {
			return coverage{missed: ep}
		}
	}
	return coverage{}
}

// appHandlers are handlers that answer with the app itself: a route
// holding one that runs before the gateway answers without it.
var appHandlers = map[string]bool{"reverse_proxy": true, "file_server": true}

// answersWithApp reports whether a request that r matches can reach one
// of appHandlers in it without passing a gateway first.
func answersWithApp(r *caddyhttp.Route) bool {
	for _, h := range r.Handlers {
		switch h := h.(type) {
		case *Gateway:
			return false
		case *caddyhttp.Subroute:
			gated, app := listAnswersWithApp(h.Routes)
			if app {
				return true
			}
			if gated {
				return false
			}
		default:
			if mod, ok := h.(caddy.Module); ok && appHandlers[caddy.GetModuleName(mod)] {
				return true
			}
		}
	}
	return false
}

// listAnswersWithApp is answersWithApp for a route list: app when one of
// its routes answers with the app, gated when a route for every request
// runs a gateway first, which every later route is then behind.
func listAnswersWithApp(rl caddyhttp.RouteList) (gated, app bool) {
	for i := range rl {
		if answersWithApp(&rl[i]) {
			return false, true
		}
		if gatesAll(&rl[i]) {
			return true, false
		}
	}
	return false, false
}

// gatesAll reports whether r runs a gateway for every request.
func gatesAll(r *caddyhttp.Route) bool {
	if len(r.MatcherSets) > 0 {
		return false
	}
	for _, h := range r.Handlers {
		if _, ok := h.(*Gateway); ok {
			return true
		}
	}
	return false
}

// shadowOf evaluates the matcher sets of a route that comes before the
// way to a gateway and answers with the app. Unlike an enclosing route's,
// its host matchers count: a set for another host is another site. It
// reports the first gateway endpoint the route takes (c.missed, read as
// "taken") and whether any set is for the gateway's own site at all.
func shadowOf(sets caddyhttp.MatcherSets, prefix string, base *url.URL, srv *caddyhttp.Server) (c coverage, sameSite bool) {
	if len(sets) == 0 {
		ep := gatewayEndpoints(prefix)[0]
		return coverage{missed: ep}, true
	}
	defer func() {
		if p := recover(); p != nil {
			c, sameSite = coverage{err: fmt.Errorf("a matcher panicked on a probe request: %v", p)}, true
		}
	}()
	var rest caddyhttp.MatcherSets
	for _, set := range sets {
		var hosts, kept caddyhttp.MatcherSet
		for _, m := range set {
			if _, ok := m.(*caddyhttp.MatchHost); ok {
				hosts = append(hosts, m)
			} else {
				kept = append(kept, m)
			}
		}
		if len(hosts) > 0 {
			ok, err := hosts.MatchWithError(probe(http.MethodGet, prefix+"/login", base, srv))
			if err != nil {
				return coverage{err: err}, true
			}
			if !ok {
				continue // another site
			}
		}
		rest = append(rest, kept)
	}
	if len(rest) == 0 {
		return coverage{}, false
	}
	for _, ep := range gatewayEndpoints(prefix) {
		ok, err := rest.AnyMatchWithError(probe(ep[0], ep[1], base, srv))
		if err != nil {
			return coverage{err: fmt.Errorf("matching %s %s: %w", ep[0], ep[1], err)}, true
		}
		if ok {
			return coverage{missed: ep}, true
		}
	}
	return coverage{}, true
}

// describeMatchers renders matcher sets for an operator: `path ["/sso"]`,
// `not (path ["/public/*"])`, sets joined by "or".
func describeMatchers(sets caddyhttp.MatcherSets) string {
	var out []string
	for _, set := range sets {
		var ms []string
		for _, m := range set {
			ms = append(ms, describeMatcher(m))
		}
		out = append(out, strings.Join(ms, " and "))
	}
	return strings.Join(out, " or ")
}

func describeMatcher(m any) string {
	if n, ok := m.(*caddyhttp.MatchNot); ok {
		return "not (" + describeMatchers(n.MatcherSets) + ")"
	}
	name := fmt.Sprintf("%T", m)
	if mod, ok := m.(caddy.Module); ok {
		name = caddy.GetModuleName(mod)
	}
	raw, err := json.Marshal(m)
	if err != nil || string(raw) == "null" || string(raw) == "{}" {
		return name
	}
	if len(raw) > 200 {
		raw = append(raw[:200:200], "…"...)
	}
	return name + " " + string(raw)
}

// coverageError explains a matcher that keeps the gateway from its own
// endpoints; subject names the matcher and where it is.
func coverageError(subject string, c coverage, prefix string) error {
	if c.err != nil {
		return fmt.Errorf("%s cannot be checked: %w; remove the matcher and choose what needs a session with "+
			"public_paths/protected_paths", subject, c.err)
	}
	return fmt.Errorf("%s does not cover %s %s, one of the gateway's own endpoints (under its prefix %s): "+
		"sign-in cannot work, and every request the matcher does not match goes on without the gateway "+
		"(no sign-in, client-sent identity headers kept); remove the matcher and choose what needs a session with "+
		"public_paths/protected_paths", subject, c.missed[0], c.missed[1], prefix)
}

// enclosing is a route on the way from a server to a gateway, with the
// routes before it in its list that answer with the app.
type enclosing struct {
	at      string
	sets    caddyhttp.MatcherSets
	earlier []sibling
}

type sibling struct {
	at    string
	route *caddyhttp.Route
}

// checkGatewayRoutes walks the provisioned http app down to every
// sso_gateway and checks the matchers of every route on the way (see the
// top of this file). It runs in Start, when every app of the config is
// provisioned, so a JSON config, which never meets the Caddyfile adapter,
// is checked the same way; an error stops the config from starting and
// the running one stays.
func (a *App) checkGatewayRoutes() error {
	appIface, err := a.ctx.AppIfConfigured("http")
	if errors.Is(err, caddy.ErrNotConfigured) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sso: checking the routes to sso_gateway: %w", err)
	}
	httpApp, ok := appIface.(*caddyhttp.App)
	if !ok {
		return nil
	}
	names := make([]string, 0, len(httpApp.Servers))
	for name := range httpApp.Servers {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		srv := httpApp.Servers[name]
		w := routeWalker{app: a, srv: srv}
		at := fmt.Sprintf("servers.%s", name)
		w.routes(at+".routes", srv.Routes, nil)
		if srv.Errors != nil {
			w.routes(at+".errors.routes", srv.Errors.Routes, nil)
			w.warnAppInErrorRoutes(at+".errors.routes", srv.Errors.Routes)
		}
		// Named routes run where they are invoked, under the matchers
		// there (see route); one that is never invoked never runs.
		if w.err != nil {
			return w.err
		}
	}
	return nil
}

type routeWalker struct {
	app      *App
	srv      *caddyhttp.Server
	err      error
	invoking []string // named routes being walked, against invoke loops
	gateways int      // sso_gateway handlers met on this server
}

// warnAppInErrorRoutes warns about error routes of a server with a
// gateway that answer with the app: when the gateway fails a request with
// an error (503 while the store is unavailable), Caddy hands that request
// to the error routes, which would serve the app without a session. Not
// refused: `handle_errors { rewrite * /{err.status_code}.html; file_server }`
// is the usual way to serve error pages.
func (w *routeWalker) warnAppInErrorRoutes(at string, rl caddyhttp.RouteList) {
	if w.gateways == 0 {
		return
	}
	for i := range rl {
		if answersWithApp(&rl[i]) {
			w.app.logger.Warn("an error route answers with reverse_proxy or file_server: a request sso_gateway fails "+
				"with an error (for example while the store is unavailable) reaches it without sign-in; make sure it "+
				"serves only error pages, never the application",
				zap.String("route", fmt.Sprintf("%s[%d]", at, i)))
		}
	}
}

func (w *routeWalker) routes(at string, rl caddyhttp.RouteList, outer []enclosing) {
	var earlier []sibling
	gated := false
	for i := range rl {
		rat := fmt.Sprintf("%s[%d]", at, i)
		w.route(rat, &rl[i], outer, earlier)
		// Routes behind a gateway that runs for every request bypass no
		// gateway after them.
		gated = gated || gatesAll(&rl[i])
		if !gated && answersWithApp(&rl[i]) {
			earlier = append(earlier, sibling{rat, &rl[i]})
		}
	}
}

func (w *routeWalker) route(at string, r *caddyhttp.Route, outer []enclosing, earlier []sibling) {
	if r == nil || w.err != nil {
		return
	}
	if len(r.MatcherSets) > 0 || len(earlier) > 0 {
		outer = append(slices.Clip(outer), enclosing{at: at, sets: r.MatcherSets, earlier: slices.Clip(earlier)})
	}
	// Handlers earlier in this route that answer with the app come before
	// a gateway later in it as earlier routes do: a handler itself
	// answers every request that reaches it (the Caddyfile puts
	// `route { reverse_proxy …; sso_gateway }` in one route), a subroute
	// the requests its routes match.
	var before []sibling
	for i, h := range r.Handlers {
		hat := fmt.Sprintf("%s.handle[%d]", at, i)
		inner := outer
		if len(before) > 0 {
			inner = append(slices.Clip(outer), enclosing{at: at, earlier: slices.Clip(before)})
		}
		switch h := h.(type) {
		case *Gateway:
			w.gateway(hat, h, inner)
		case *caddyhttp.Invoke:
			if nr := w.srv.NamedRoutes[h.Name]; nr != nil && !slices.Contains(w.invoking, h.Name) {
				w.invoking = append(w.invoking, h.Name)
				w.route(fmt.Sprintf("%s(named_routes.%s)", hat, h.Name), nr, inner, nil)
				w.invoking = w.invoking[:len(w.invoking)-1]
			}
		case *caddyhttp.Subroute:
			w.routes(hat+".routes", h.Routes, inner)
			if h.Errors != nil {
				w.routes(hat+".errors.routes", h.Errors.Routes, inner)
			}
			for j := range h.Routes {
				if gatesAll(&h.Routes[j]) {
					break
				}
				if answersWithApp(&h.Routes[j]) {
					before = append(before, sibling{fmt.Sprintf("%s.routes[%d]", hat, j), &h.Routes[j]})
				}
			}
		default:
			if answersWithApp(&caddyhttp.Route{Handlers: []caddyhttp.MiddlewareHandler{h}}) {
				before = append(before, sibling{hat, &caddyhttp.Route{}})
			}
		}
	}
}

func (w *routeWalker) gateway(at string, g *Gateway, outer []enclosing) {
	w.gateways++
	base := w.app.baseURL
	bypass := func(route, desc, what string) {
		if g.AllowBypass {
			return
		}
		w.app.logger.Warn("sso_gateway does not run for every request: "+what+
			"; remove the matcher and choose what needs a session with public_paths/protected_paths, "+
			"or set allow_bypass on the sso_gateway if this is intended",
			zap.String("gateway", at), zap.String("route", route), zap.String("matcher", desc))
	}
	for _, e := range outer {
		for _, s := range e.earlier {
			c, sameSite := shadowOf(s.route.MatcherSets, g.Prefix, base, w.srv)
			desc := describeMatchers(s.route.MatcherSets)
			switch {
			case !sameSite:
			case c.err != nil:
				w.err = coverageError(fmt.Sprintf("sso_gateway at %s: the matcher %s of %s, which comes before the gateway and answers with the app,",
					at, desc, s.at), c, g.Prefix)
				return
			case c.missed[0] != "":
				w.err = fmt.Errorf("sso_gateway at %s: %s comes before the gateway and answers with the app (reverse_proxy or file_server) "+
					"for %s %s, one of the gateway's own endpoints: sign-in cannot work, and the requests that route matches "+
					"never meet the gateway; put sso_gateway before it (in the same route, without a matcher) and choose what "+
					"needs a session with public_paths/protected_paths", at, s.at, c.missed[0], c.missed[1])
				return
			default:
				bypass(s.at, desc, "requests the matcher of an earlier route matches reach the app there, without sign-in "+
					"and with client-sent identity headers")
			}
		}
		if len(e.sets) == 0 {
			continue
		}
		c := coverageOf(e.sets, g.Prefix, base, w.srv)
		desc := describeMatchers(e.sets)
		switch {
		case c.hostOnly:
		case c.err != nil || c.missed[0] != "":
			w.err = coverageError(fmt.Sprintf("sso_gateway at %s: the matcher %s of route %s", at, desc, e.at), c, g.Prefix)
			return
		default:
			bypass(e.at, desc, "requests a route matcher does not match reach the next handlers without sign-in "+
				"and with client-sent identity headers")
		}
	}
}

// adaptTimeCoverage runs the coverage check on the matcher token of an
// sso_gateway directive while the Caddyfile is adapted, so that `caddy
// adapt` and `caddy validate` already refuse `sso_gateway /sso`. Only the
// directive's own matcher is known here; the check at start sees the
// enclosing routes too. When something needed for the check is not known
// yet (a prefix in placeholders the adapting process cannot expand, a
// matcher that only provisions in a running server), it is left to the
// check at start.
func adaptTimeCoverage(h httpcaddyfile.Helper, g *Gateway, matcherSet caddy.ModuleMap) error {
	base := adaptBaseURL(h)
	prefix := caddy.NewReplacer().ReplaceKnown(g.Prefix, "")
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if checkPrefix(prefix) != nil {
		return nil // Validate will say what is wrong with it
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	route := caddyhttp.Route{MatcherSetsRaw: caddyhttp.RawMatcherSets{matcherSet}}
	if err := route.ProvisionMatchers(ctx); err != nil {
		return nil
	}
	c := coverageOf(route.MatcherSets, prefix, base, nil)
	if c.hostOnly || (c.err == nil && c.missed[0] == "") {
		return nil
	}
	return coverageError("sso_gateway: its matcher "+describeMatchers(route.MatcherSets), c, prefix)
}

// adaptBaseURL finds the base_url of the global `sso` option. Without one
// (it may come from the environment of the server, not of `caddy adapt`),
// the probes go to localhost: host matchers count as matching anyway.
func adaptBaseURL(h httpcaddyfile.Helper) *url.URL {
	fallback := &url.URL{Scheme: "https", Host: "localhost"}
	opt, ok := h.Option("sso").(httpcaddyfile.App)
	if !ok {
		return fallback
	}
	var app App
	if err := json.Unmarshal(opt.Value, &app); err != nil {
		return fallback
	}
	u, err := parseBaseURL(caddy.NewReplacer().ReplaceKnown(app.BaseURL, ""))
	if err != nil {
		return fallback
	}
	return u
}
