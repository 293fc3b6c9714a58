package caddymodule

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/ssogate/ssogate/caddymodule/configurator"
	"github.com/ssogate/ssogate/caddymodule/orgs"
	"github.com/ssogate/ssogate/caddymodule/pages"
	"github.com/ssogate/ssogate/caddymodule/session"
	"github.com/ssogate/ssogate/store"
)

// The org admin's users page and JSON API, on the gateway's own routes:
//
//	GET    {prefix}/admin/users?role=&status=     HTML (JSON with Accept: application/json)
//	POST   {prefix}/admin/users/invite            form: email, role, display_name, csrf
//	POST   {prefix}/admin/users/{id}/invite       form: csrf (new link for an account without a password)
//	POST   {prefix}/admin/users/{id}/remove       form: csrf
//	POST   {prefix}/admin/users/{id}/unlink       form: csrf (forget the stored IdP identifier)
//	GET    {prefix}/admin/api/session             {org, user, method, csrf_token}
//	GET    {prefix}/admin/api/users?role=&status=  [user...]
//	POST   {prefix}/admin/api/users               {"email","role"?,"display_name"?} → 201 link (shown once)
//	DELETE {prefix}/admin/api/users/{id}          → 204
//	POST   {prefix}/admin/api/users/{id}/invite   → 201 link
//	POST   {prefix}/admin/api/users/{id}/unlink   the org admin API's (forget the stored IdP identifier)
//	*      {prefix}/admin/api[/...]               the org admin API (orgs.OrgHandler), see configurator.go
//	*      {prefix}/admin/[...]                   the configurator page, see configurator.go
//	GET    {prefix}/reauth?return=                "Confirm it's you", see reauth.go
//	POST   {prefix}/reauth                        form: csrf, return → sign in again
//
// Who is an org admin: a session of the org whose user is a local account
// with role admin, or a SAML session of a member of the org's configurators
// group (store.Org's ConfigGroup; unset by default, so that everyone who
// may sign in with SSO cannot also switch it off). Everything acts on the session's org; a request naming
// another org (?org=) gets 403, a user ID of another org 404. Without a
// session: the sign-in page (HTML) or 401 (JSON). Every state-changing
// request must pass http.CrossOriginProtection and carry the session's
// CSRF token (form field `csrf`, or header X-CSRF-Token for JSON), and
// JSON bodies must be application/json, which a cross-site form cannot
// send. Sensitive changes need a sign-in within reauth_window (403
// reauthentication_required otherwise; see reauth.go).

// csrfHeader carries the CSRF token of JSON API requests.
const csrfHeader = "X-CSRF-Token"

// orgAdmin is a signed-in org admin.
type orgAdmin struct {
	sess  *store.Session
	id    identity
	actor string // for the audit trail
	csrf  string
	// flashKey seals this admin's flashes (configurator.Flashes).
	flashKey []byte
}

// serveAdminUsers routes the admin endpoints; false for other paths.
func (g *Gateway) serveAdminUsers(w http.ResponseWriter, r *http.Request, rest string) bool {
	type route struct {
		method string
		json   bool
		fn     func(http.ResponseWriter, *http.Request, *gatewayState, *localState, *orgAdmin, string)
	}
	var routes []route
	var arg string
	switch {
	case rest == "/admin/users":
		routes = []route{{http.MethodGet, false, g.usersPage}}
	case rest == "/admin/users/invite":
		routes = []route{{http.MethodPost, false, g.usersInviteForm}}
	case strings.HasPrefix(rest, "/admin/users/"):
		id, action, ok := strings.Cut(strings.TrimPrefix(rest, "/admin/users/"), "/")
		if !ok || id == "" || strings.Contains(action, "/") {
			return false
		}
		arg = id
		switch action {
		case "remove":
			routes = []route{{http.MethodPost, false, g.usersRemoveForm}}
		case "invite":
			routes = []route{{http.MethodPost, false, g.usersReinviteForm}}
		case "unlink":
			routes = []route{{http.MethodPost, false, g.usersUnlinkForm}}
		default:
			return false
		}
	case rest == "/admin/signin-attempts": // attempts.go
		routes = []route{{http.MethodGet, false, g.attemptsPage}}
	case rest == "/admin/signin-attempts/test":
		routes = []route{{http.MethodPost, false, g.attemptsTest}}
	case rest == "/admin/signin-attempts/idp-initiated":
		routes = []route{{http.MethodPost, false, g.attemptsIdPInitiated}}
	case rest == "/admin/api/signin-attempts":
		routes = []route{{http.MethodGet, true, g.apiAttempts}}
	case rest == "/admin/api/session":
		routes = []route{{http.MethodGet, true, g.apiSession}}
	case rest == "/admin/api/users":
		routes = []route{{http.MethodGet, true, g.apiListUsers}, {http.MethodPost, true, g.apiInvite}}
	case strings.HasPrefix(rest, "/admin/api/users/"):
		id, action, _ := strings.Cut(strings.TrimPrefix(rest, "/admin/api/users/"), "/")
		if id == "" {
			return false
		}
		arg = id
		switch action {
		case "":
			routes = []route{{http.MethodDelete, true, g.apiRemove}}
		case "invite":
			routes = []route{{http.MethodPost, true, g.apiReinvite}}
		case "unlink": // orgs.OrgHandler's
			return g.serveConfigurator(w, r, rest)
		default:
			return false
		}
	default:
		return g.serveConfigurator(w, r, rest)
	}

	var rt *route
	var allow []string
	for i := range routes {
		allow = append(allow, routes[i].method)
		if routes[i].method == r.Method || (r.Method == http.MethodHead && routes[i].method == http.MethodGet) {
			rt = &routes[i]
		}
	}
	isJSON := routes[0].json || (r.Method == http.MethodGet && wantsJSON(r))
	if rt == nil {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		if isJSON {
			writeJSONError(w, http.StatusMethodNotAllowed, "method not allowed")
		} else {
			g.methodNotAllowed(w, strings.Join(allow, ", "))
		}
		return true
	}
	st, ls, err := g.localStates()
	if err != nil {
		g.internalError(w, r, "opening state", err)
		return true
	}
	admin, ok := g.requireOrgAdmin(w, r, st, ls, isJSON)
	if !ok {
		return true
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && !g.checkSessionCSRF(w, r, ls, admin, rt.json, maxLocalForm, g.Prefix+"/admin/users") {
		return true
	}
	if !g.requireFresh(w, r, admin, rt.json, g.Prefix+"/admin/users") {
		return true
	}
	rt.fn(w, r, st, ls, admin, arg)
	return true
}

// wantsJSON: an API client asking for JSON rather than a page.
func wantsJSON(r *http.Request) bool {
	a := r.Header.Get("Accept")
	return strings.Contains(a, "application/json") && !strings.Contains(a, "text/html")
}

// requireOrgAdmin loads and re-checks the session and requires an org
// admin; otherwise it answers the request and returns false.
func (g *Gateway) requireOrgAdmin(w http.ResponseWriter, r *http.Request, st *gatewayState, ls *localState, isJSON bool) (*orgAdmin, bool) {
	sess, err := st.sessions.Load(r)
	var id identity
	if err != nil && !errors.Is(err, session.ErrNoSession) {
		g.storeUnavailable(w, isJSON, err)
		return nil, false
	}
	if err == nil {
		var reason string
		reason, id, err = g.recheck(st.store, sess)
		if err != nil {
			g.storeUnavailable(w, isJSON, err)
			return nil, false
		}
		if reason != "" {
			g.logger.Info("session ended by re-check", zap.String("org", sess.OrgID), zap.String("user_id", sess.UserID), zap.String("reason", reason))
			_ = st.store.DeleteSession(sess.ID)
			err = errors.New(reason)
		}
	}
	if err != nil {
		if isJSON {
			writeJSONError(w, http.StatusUnauthorized, "authentication required")
		} else {
			g.challenge(w, r)
		}
		return nil, false
	}
	forbidden := func(msg string) (*orgAdmin, bool) {
		g.logger.Warn("org admin page refused", zap.String("org", sess.OrgID), zap.String("user_id", sess.UserID), zap.String("reason", msg))
		if isJSON {
			writeJSONError(w, http.StatusForbidden, msg)
		} else {
			g.message(w, http.StatusForbidden, "Access denied", msg, "Sign in as an administrator of the organization.", false)
		}
		return nil, false
	}
	// Everything here acts on the session's org; naming another one is
	// someone trying to reach a tenant that is not theirs.
	if o := r.URL.Query().Get("org"); o != "" && o != sess.OrgID {
		return forbidden("You are not an administrator of that organization.")
	}
	u, err := st.store.GetUser(sess.OrgID, sess.UserID)
	if err != nil {
		g.internalError(w, r, "loading user", err)
		return nil, false
	}
	var isAdmin bool
	if sess.AuthMethod == authSAML {
		// Everyone in the sign-in group has an SSO session; only the
		// org's chosen configurators may change its SSO (store.Org's
		// ConfigGroup; none by default).
		org, err := st.store.GetOrg(sess.OrgID)
		if err != nil {
			g.internalError(w, r, "loading organization", err)
			return nil, false
		}
		if isAdmin, err = inGroup(st.store, org, org.ConfigGroup, u, sess.Groups); err != nil {
			g.internalError(w, r, "checking the configurators group", err)
			return nil, false
		}
		if !isAdmin {
			return forbidden("Your organization lets only its local administrators, and members of the IdP group it chose, change its single sign-on settings.")
		}
	} else {
		isAdmin = u.Source == store.SourceLocal && u.Role == store.RoleAdmin
	}
	if !isAdmin {
		return forbidden("Only administrators of your organization can manage its users and settings.")
	}
	actor := id.User
	if actor == "" {
		actor = id.UserID
	}
	// The cookie was just opened by Load, so this only fails if it
	// changed meanwhile; a nil key then makes flashes fail, not leak.
	flashKey, _ := st.sessions.BrowserSecret(r, "flash")
	return &orgAdmin{sess: sess, id: id, actor: actor, csrf: ls.csrf.Token("session:" + sess.ID), flashKey: flashKey}, true
}

// checkSessionCSRF refuses a state-changing request another site made.
// Forms are read up to maxForm bytes; retry is the page a refused form
// post is sent back to.
func (g *Gateway) checkSessionCSRF(w http.ResponseWriter, r *http.Request, ls *localState, a *orgAdmin, isJSON bool, maxForm int64, retry string) bool {
	ok := ls.origin.Check(r) == nil
	if ok {
		tok := r.Header.Get(csrfHeader)
		if !isJSON {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
			if err := r.ParseForm(); err != nil {
				if _, tooBig := errors.AsType[*http.MaxBytesError](err); tooBig {
					g.message(w, http.StatusRequestEntityTooLarge, "Request too large", "The form was too large.", "", false)
					return false
				}
				g.message(w, http.StatusBadRequest, "Bad request", "The form could not be read.", "", false)
				return false
			}
			tok = r.PostForm.Get("csrf")
		}
		ok = ls.csrf.Valid("session:"+a.sess.ID, tok)
	}
	if !ok {
		g.logger.Warn("CSRF check failed", zap.String("org", a.sess.OrgID), zap.String("path", r.URL.Path), zap.String("remote_ip", clientIP(r)))
		if isJSON {
			writeJSONError(w, http.StatusForbidden, "missing or invalid CSRF token (send the "+csrfHeader+" header from "+g.Prefix+"/admin/api/session)")
		} else {
			g.csrfRefused(w, retry)
		}
	}
	return ok
}

// ---- HTML -----------------------------------------------------------------

func (g *Gateway) usersPage(w http.ResponseWriter, r *http.Request, st *gatewayState, ls *localState, a *orgAdmin, _ string) {
	q := r.URL.Query()
	if wantsJSON(r) {
		g.apiListUsers(w, r, st, ls, a, "")
		return
	}
	page := pages.Users{Role: q.Get("role"), Status: q.Get("status")}
	switch q.Get("done") {
	case "removed":
		page.Notice = "The user was removed."
	case "unlinked":
		page.Notice = "The user's link to their identity provider account was removed and their sessions ended. Their next SSO sign-in links the account again."
	}
	if id := q.Get("r"); id != "" {
		ps, err := g.app.processState()
		if err != nil {
			g.internalError(w, r, "opening state", err)
			return
		}
		f := &usersOutcome{}
		ok, err := ps.flashes.Take(a.sess.OrgID, a.sess.ID, a.flashKey, id, f)
		if err != nil {
			g.internalError(w, r, "reading the result", err)
			return
		}
		if ok {
			page = f.page
		} else {
			page.Notice = "This page was reloaded: an invitation link is shown only once. Use New link on the account to issue another."
		}
	}
	g.renderUsers(w, r, a, page, http.StatusOK)
}

// renderUsers fills in the list and renders the page; an error from the
// org service becomes the page's error message.
func (g *Gateway) renderUsers(w http.ResponseWriter, r *http.Request, a *orgAdmin, page pages.Users, status int) {
	svc, err := g.app.Orgs()
	if err != nil {
		g.internalError(w, r, "opening orgs", err)
		return
	}
	org, err := svc.GetOrg(a.sess.OrgID)
	if err != nil {
		g.serviceError(w, r, err, false)
		return
	}
	page.Prefix, page.OrgName, page.Me, page.CSRF = g.Prefix, org.Name, a.actor, a.csrf
	page.SSOActive = org.State == store.OrgActive
	users, err := svc.ListUsers(a.sess.OrgID, orgs.UserFilter{Role: page.Role, Status: page.Status})
	if e, ok := orgs.AsError(err); ok {
		page.Error, page.Role, page.Status = e.Error(), "", ""
		users, err = svc.ListUsers(a.sess.OrgID, orgs.UserFilter{})
		status = e.Status
	}
	if err != nil {
		g.serviceError(w, r, err, false)
		return
	}
	for _, u := range users {
		row := pages.UserRow{
			ID: u.ID, Name: u.DisplayName, Email: u.Email, Source: u.Source, Role: u.Role, Status: u.Status,
			Backup: u.BackupLogin,
		}
		if row.Email == "" {
			row.Email = u.UserName
		}
		if !u.LastLogin.IsZero() {
			row.LastLogin = u.LastLogin.UTC().Format("2 Jan 2006 15:04 MST")
		}
		if !u.InviteExpires.IsZero() {
			row.InviteExpires = u.InviteExpires.UTC().Format("2 Jan 2006 15:04 MST")
		}
		local := u.Source == store.SourceLocal
		row.Removable = local && !u.BackupLogin && u.ID != a.sess.UserID
		row.Reinvitable = local && u.Status == orgs.StatusInvited
		row.Unlinkable = u.IdPLinked && u.ID != a.sess.UserID
		page.Users = append(page.Users, row)
	}
	g.pages.RenderWithScript(w, status, "users", &page)
}

func (g *Gateway) usersInviteForm(w http.ResponseWriter, r *http.Request, _ *gatewayState, _ *localState, a *orgAdmin, _ string) {
	svc, err := g.app.Orgs()
	if err != nil {
		g.internalError(w, r, "opening orgs", err)
		return
	}
	f := r.PostForm
	link, err := svc.InviteLocalUser(a.actor, a.sess.OrgID, f.Get("email"), f.Get("role"), f.Get("display_name"))
	g.afterLinkForm(w, r, a, link, err)
}

func (g *Gateway) usersReinviteForm(w http.ResponseWriter, r *http.Request, _ *gatewayState, _ *localState, a *orgAdmin, id string) {
	svc, err := g.app.Orgs()
	if err != nil {
		g.internalError(w, r, "opening orgs", err)
		return
	}
	link, err := svc.ReinviteLocalUser(a.actor, a.sess.OrgID, id)
	g.afterLinkForm(w, r, a, link, err)
}

// afterLinkForm shows the users page with the new link, once, through a
// flash (usersFlash): the link never appears in a URL, and a reload
// issues no other.
func (g *Gateway) afterLinkForm(w http.ResponseWriter, r *http.Request, a *orgAdmin, link *orgs.SetPasswordLink, err error) {
	page := pages.Users{}
	if e, ok := orgs.AsError(err); ok {
		page.Error = e.Error()
	} else if err != nil {
		g.serviceError(w, r, err, false)
		return
	} else {
		svc, err := g.app.Orgs()
		var org *orgs.OrgView
		if err == nil {
			org, err = svc.GetOrg(a.sess.OrgID)
		}
		if err != nil {
			g.serviceError(w, r, err, false)
			return
		}
		page.NewLink = &pages.NewLink{Email: link.Email, URL: link.URL, Expires: link.ExpiresAt.UTC().Format("2 Jan 2006 15:04 MST"),
			// Said up front: a new account of an org with SSO on cannot
			// sign in with the password it is about to choose.
			SSOOnly: org.State == store.OrgActive}
	}
	g.usersFlash(w, r, a, &page)
}

// usersFlash keeps a post's outcome for the users page and redirects
// there (Post/Redirect/Get).
func (g *Gateway) usersFlash(w http.ResponseWriter, r *http.Request, a *orgAdmin, page *pages.Users) {
	ps, err := g.app.processState()
	if err != nil {
		g.internalError(w, r, "opening state", err)
		return
	}
	id, err := ps.flashes.Put(a.sess.OrgID, a.sess.ID, a.flashKey, &usersOutcome{page: *page})
	if err != nil {
		g.internalError(w, r, "keeping the result", err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, g.Prefix+"/admin/users?r="+id, http.StatusSeeOther)
}

// usersOutcome is the users page's flash: a post's notice, error or new
// link, and nothing else of the page.
type usersOutcome struct{ page pages.Users }

// MarshalJSON implements json.Marshaler: a flash travels as JSON.
func (o *usersOutcome) MarshalJSON() ([]byte, error) {
	return configurator.EncodeJSON(o.page)
}

// UnmarshalJSON implements json.Unmarshaler.
func (o *usersOutcome) UnmarshalJSON(b []byte) error {
	return json.Unmarshal(b, &o.page)
}

// Detach implements configurator.Flash.
func (o *usersOutcome) Detach() int {
	p := pages.Users{Notice: configurator.OwnMessage(o.page.Notice), Error: configurator.OwnMessage(o.page.Error)}
	n := len(p.Notice) + len(p.Error)
	if l := o.page.NewLink; l != nil {
		p.NewLink = &pages.NewLink{Email: strings.Clone(l.Email), URL: strings.Clone(l.URL), Expires: strings.Clone(l.Expires), SSOOnly: l.SSOOnly}
		n += len(l.Email) + len(l.URL) + len(l.Expires)
	}
	o.page = p
	return n
}

func (g *Gateway) usersRemoveForm(w http.ResponseWriter, r *http.Request, _ *gatewayState, _ *localState, a *orgAdmin, id string) {
	if err := g.removeLocalUser(a, id); err != nil {
		if e, ok := orgs.AsError(err); ok {
			g.usersFlash(w, r, a, &pages.Users{Error: e.Error()})
			return
		}
		g.serviceError(w, r, err, false)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, g.Prefix+"/admin/users?done=removed", http.StatusSeeOther)
}

func (g *Gateway) usersUnlinkForm(w http.ResponseWriter, r *http.Request, _ *gatewayState, _ *localState, a *orgAdmin, id string) {
	svc, err := g.app.Orgs()
	if err != nil {
		g.internalError(w, r, "opening orgs", err)
		return
	}
	if strings.Contains(id, "@") { // IDs only, as for remove
		g.usersFlash(w, r, a, &pages.Users{Error: "no such user"})
		return
	}
	if _, err := svc.UnlinkUser(a.actor, a.sess.OrgID, id); err != nil {
		if e, ok := orgs.AsError(err); ok {
			g.usersFlash(w, r, a, &pages.Users{Error: e.Error()})
			return
		}
		g.serviceError(w, r, err, false)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, g.Prefix+"/admin/users?done=unlinked", http.StatusSeeOther)
}

// removeLocalUser removes a local account of the admin's org; an admin
// cannot remove their own account (they would lock themselves out
// mid-session).
func (g *Gateway) removeLocalUser(a *orgAdmin, id string) error {
	if id == a.sess.UserID {
		return &orgs.Error{Status: http.StatusConflict, Message: "you cannot remove your own account"}
	}
	svc, err := g.app.Orgs()
	if err != nil {
		return err
	}
	// Only IDs: an address would be looked up by userName, and the JSON
	// API's routes name users by ID.
	if strings.Contains(id, "@") {
		return &orgs.Error{Status: http.StatusNotFound, Message: "no such user"}
	}
	return svc.RemoveLocalUser(a.actor, a.sess.OrgID, id)
}

// serviceError answers an error from the org service: its own status and
// message for refusals, 500 (details in the log) otherwise.
func (g *Gateway) serviceError(w http.ResponseWriter, r *http.Request, err error, isJSON bool) {
	e, ok := orgs.AsError(err)
	if !ok {
		if isJSON {
			g.logger.Error("internal error", zap.String("path", r.URL.Path), zap.Error(err))
			writeJSONError(w, http.StatusInternalServerError, "internal error; see the server log")
			return
		}
		g.internalError(w, r, "org admin request", err)
		return
	}
	if isJSON {
		writeJSONValue(w, e.Status, e)
		return
	}
	g.message(w, e.Status, "Request refused", e.Error(), "", false)
}

// ---- JSON -----------------------------------------------------------------

func writeJSONValue(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decodeBody reads a JSON object of at most 64 KiB into dst; unknown
// fields are refused.
func decodeBody(w http.ResponseWriter, r *http.Request, dst any) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return &orgs.Error{Status: http.StatusUnsupportedMediaType, Message: "Content-Type must be application/json"}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return &orgs.Error{Status: http.StatusBadRequest, Message: "request body must be a JSON object with known fields: " + strings.TrimPrefix(err.Error(), "json: ")}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &orgs.Error{Status: http.StatusBadRequest, Message: "request body must be a single JSON object"}
	}
	return nil
}

// sessionInfo tells a script or the configurator who is signed in, and
// the CSRF token its state-changing requests must carry.
type sessionInfo struct {
	Org       string `json:"org"`
	UserID    string `json:"user_id"`
	User      string `json:"user"`
	Method    string `json:"auth_method"`
	CSRFToken string `json:"csrf_token"`
	CSRFHead  string `json:"csrf_header"`
	// AuthTime is the sign-in time; sensitive changes need one within
	// ReauthWindow (else 403 reauthentication_required).
	AuthTime     time.Time `json:"auth_time"`
	ReauthWindow string    `json:"reauth_window"`
}

func (g *Gateway) apiSession(w http.ResponseWriter, _ *http.Request, _ *gatewayState, _ *localState, a *orgAdmin, _ string) {
	writeJSONValue(w, http.StatusOK, sessionInfo{
		Org: a.sess.OrgID, UserID: a.sess.UserID, User: a.id.User, Method: a.id.AuthMethod,
		CSRFToken: a.csrf, CSRFHead: csrfHeader,
		AuthTime: session.AuthTime(a.sess).UTC(), ReauthWindow: time.Duration(g.app.ReauthWindow).String(),
	})
}

func (g *Gateway) apiListUsers(w http.ResponseWriter, r *http.Request, _ *gatewayState, _ *localState, a *orgAdmin, _ string) {
	svc, err := g.app.Orgs()
	if err != nil {
		g.serviceError(w, r, err, true)
		return
	}
	q := r.URL.Query()
	users, err := svc.ListUsers(a.sess.OrgID, orgs.UserFilter{Role: q.Get("role"), Status: q.Get("status")})
	if err != nil {
		g.serviceError(w, r, err, true)
		return
	}
	w.Header().Set(csrfHeader, a.csrf)
	writeJSONValue(w, http.StatusOK, users)
}

func (g *Gateway) apiInvite(w http.ResponseWriter, r *http.Request, _ *gatewayState, _ *localState, a *orgAdmin, _ string) {
	var req struct {
		Email       string `json:"email"`
		Role        string `json:"role"`
		DisplayName string `json:"display_name"`
	}
	if err := decodeBody(w, r, &req); err != nil {
		g.serviceError(w, r, err, true)
		return
	}
	svc, err := g.app.Orgs()
	if err != nil {
		g.serviceError(w, r, err, true)
		return
	}
	link, err := svc.InviteLocalUser(a.actor, a.sess.OrgID, req.Email, req.Role, req.DisplayName)
	if err != nil {
		g.serviceError(w, r, err, true)
		return
	}
	writeJSONValue(w, http.StatusCreated, link)
}

func (g *Gateway) apiRemove(w http.ResponseWriter, r *http.Request, _ *gatewayState, _ *localState, a *orgAdmin, id string) {
	if err := g.removeLocalUser(a, id); err != nil {
		g.serviceError(w, r, err, true)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

func (g *Gateway) apiReinvite(w http.ResponseWriter, r *http.Request, _ *gatewayState, _ *localState, a *orgAdmin, id string) {
	svc, err := g.app.Orgs()
	if err != nil {
		g.serviceError(w, r, err, true)
		return
	}
	if strings.Contains(id, "@") {
		g.serviceError(w, r, &orgs.Error{Status: http.StatusNotFound, Message: "no such user"}, true)
		return
	}
	link, err := svc.ReinviteLocalUser(a.actor, a.sess.OrgID, id)
	if err != nil {
		g.serviceError(w, r, err, true)
		return
	}
	writeJSONValue(w, http.StatusCreated, link)
}
