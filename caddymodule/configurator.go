package caddymodule

import (
	"mime"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/ssogate/ssogate/caddymodule/configurator"
	"github.com/ssogate/ssogate/caddymodule/orgs"
	ident "github.com/ssogate/ssogate/identity"
)

// The configurator (SPEC §6) on the gateway's own routes:
//
//	GET  {prefix}/admin/              the page (package configurator)
//	POST {prefix}/admin/{action}      its forms: start, domains, domains/verify, domains/remove,
//	                                  group, saml, scim-token, steps/{step}, backup, activate, deactivate
//	*    {prefix}/admin/api[/...]     the org admin's JSON API: orgs.OrgHandler for the session's org
//	POST {prefix}/admin/api/start     "Start configuring" (JSON): the admin becomes the default backup login
//
// Both sit behind the same checks as the users page (adminusers.go): an
// org admin's session, no ?org= naming another org, and for every
// state-changing request http.CrossOriginProtection plus the session's
// CSRF token (form field `csrf`, or header X-CSRF-Token for JSON). JSON
// request bodies must be application/json, which a cross-site form cannot
// send. Sensitive changes also need a recent sign-in (reauth.go), and with
// admin_origin all of this is served on another origin (adminorigin.go).

// maxConfiguratorForm caps the configurator's form posts: pasted IdP
// metadata (Entra ID's runs to tens of KiB) is the largest.
const maxConfiguratorForm = 1 << 20

// serveConfigurator routes the configurator and the org admin API; false
// for other paths.
func (g *Gateway) serveConfigurator(w http.ResponseWriter, r *http.Request, rest string) bool {
	if rest == "/admin/api" || strings.HasPrefix(rest, "/admin/api/") {
		g.serveOrgAPI(w, r)
		return true
	}
	if !configurator.Handles(rest) {
		return false
	}
	st, ls, err := g.localStates()
	if err != nil {
		g.internalError(w, r, "opening state", err)
		return true
	}
	svc, err := g.app.Orgs()
	if err != nil {
		g.internalError(w, r, "opening orgs", err)
		return true
	}
	ps, err := g.app.processState()
	if err != nil {
		g.internalError(w, r, "opening state", err)
		return true
	}
	// The handler is a few pointers; building it per request keeps the
	// admin of this request out of any shared state.
	var admin *orgAdmin
	h := &configurator.Handler{
		Orgs: svc, Prefix: g.Prefix, Pages: g.pages, Flashes: ps.flashes,
		Authorize: func(w http.ResponseWriter, r *http.Request) (*configurator.Admin, bool) {
			a, ok := g.requireOrgAdmin(w, r, st, ls, false)
			if !ok {
				return nil, false
			}
			admin = a
			return &configurator.Admin{OrgID: a.sess.OrgID, UserID: a.sess.UserID, Actor: a.actor, CSRF: a.csrf, Session: a.sess.ID, FlashKey: a.flashKey}, true
		},
		CheckCSRF: func(w http.ResponseWriter, r *http.Request, _ *configurator.Admin) bool {
			return g.checkSessionCSRF(w, r, ls, admin, false, maxConfiguratorForm, g.Prefix+"/admin/") &&
				g.requireFresh(w, r, admin, false, g.Prefix+"/admin/")
		},
		Fail: func(w http.ResponseWriter, r *http.Request, err error) {
			g.serviceError(w, r, err, false)
		},
	}
	h.ServeHTTP(w, r)
	return true
}

// serveOrgAPI serves the org admin's JSON API: the orgs package's
// OrgHandler, bound to the session's organization.
func (g *Gateway) serveOrgAPI(w http.ResponseWriter, r *http.Request) {
	st, ls, err := g.localStates()
	if err != nil {
		g.serviceError(w, r, err, true)
		return
	}
	a, ok := g.requireOrgAdmin(w, r, st, ls, true)
	if !ok {
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if r.ContentLength != 0 {
			mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if err != nil || mt != "application/json" {
				writeJSONError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
				return
			}
		}
		if !g.checkSessionCSRF(w, r, ls, a, true, 0, "") {
			return
		}
		if !g.requireFresh(w, r, a, true, g.Prefix+"/admin/") {
			return
		}
		if g.removesSelf(r, a) {
			g.serviceError(w, r, &orgs.Error{Status: http.StatusConflict, Message: "you cannot remove your own account"}, true)
			return
		}
	}
	svc, err := g.app.Orgs()
	if err != nil {
		g.serviceError(w, r, err, true)
		return
	}
	org, actor := a.sess.OrgID, a.actor
	// "Start configuring" needs the admin's user ID (they become the
	// default backup login), which OrgHandler, shared with the operator
	// API, does not know; so it is served here.
	if r.URL.Path == g.Prefix+"/admin/api/start" {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeJSONError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed here (allowed: POST)")
			return
		}
		v, err := svc.StartConfiguring(actor, org, a.sess.UserID)
		if err != nil {
			g.serviceError(w, r, err, true)
			return
		}
		w.Header().Set(csrfHeader, a.csrf)
		writeJSONValue(w, http.StatusOK, v)
		return
	}
	h := svc.OrgHandler(g.Prefix+"/admin/api",
		func(*http.Request) string { return org },
		func(*http.Request) string { return actor })
	w.Header().Set(csrfHeader, a.csrf)
	g.logger.Debug("org admin API", zap.String("org", org), zap.String("method", r.Method), zap.String("path", r.URL.Path))
	h.ServeHTTP(w, r)
}

// removesSelf tells whether the request removes the admin's own account,
// which would lock them out mid-session (the users page refuses it too).
func (g *Gateway) removesSelf(r *http.Request, a *orgAdmin) bool {
	if r.Method != http.MethodDelete {
		return false
	}
	ref, ok := strings.CutPrefix(r.URL.Path, g.Prefix+"/admin/api/local-users/")
	if !ok || ref == "" {
		return false
	}
	return ref == a.sess.UserID || (a.id.User != "" && ident.EqualFold(ref, a.id.User))
}
