package caddymodule

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/ssogate/ssogate/caddymodule/pages"
	"github.com/ssogate/ssogate/caddymodule/samlsp"
	"github.com/ssogate/ssogate/caddymodule/scim"
	"github.com/ssogate/ssogate/store"
)

// maxFormBody caps sign-in form posts; a SAMLResponse is the largest.
const maxFormBody = samlsp.MaxResponseSize + 16<<10

// maxDrainBody is how much of a refused, too large body readForm still
// reads (see there).
const maxDrainBody = 1 << 20

// readForm parses a form post of at most max bytes. When it cannot, it
// returns the status to answer with: 413 for a body over the cap, 400 for
// one that does not parse. A declared length over the cap is refused
// without parsing anything; the body is still read and dropped unless it
// is absurdly large, so that a browser that sent it sees the error page
// rather than a reset connection; beyond maxDrainBody the connection is
// closed unread.
func readForm(w http.ResponseWriter, r *http.Request, max int64) (status int, ok bool) {
	if r.ContentLength > max {
		if r.ContentLength <= maxDrainBody {
			_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, maxDrainBody))
		} else {
			w.Header().Set("Connection", "close")
		}
		return http.StatusRequestEntityTooLarge, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, max)
	if err := r.ParseForm(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return http.StatusRequestEntityTooLarge, false
		}
		return http.StatusBadRequest, false
	}
	return 0, true
}

// maxLoginBody caps the "Continue with SSO" form: an email and a return path.
const maxLoginBody = 16 << 10

// serveOwn routes the gateway's own endpoints under the prefix.
func (g *Gateway) serveOwn(w http.ResponseWriter, r *http.Request) error {
	rest := strings.TrimPrefix(r.URL.Path, g.Prefix)
	switch {
	case rest == jwksPath: // signedidentity.go
		g.serveJWKS(w, r)
		return nil
	case g.adminElsewhere(w, r, rest): // adminorigin.go
		return nil
	case g.serveLocal(w, r, rest): // backup.go: password sign-in, set-password links, users page
		return nil
	case rest == "/login":
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			g.pages.Render(w, http.StatusOK, "login", pages.Login{Prefix: g.Prefix, ReturnTo: safeReturn(r.URL.Query().Get("return"))})
		case http.MethodPost:
			g.login(w, r)
		default:
			g.methodNotAllowed(w, "GET, POST")
		}
		return nil
	case rest == "/reauth":
		g.serveReauth(w, r)
		return nil
	case rest == "/logout":
		g.serveLogout(w, r) // logout.go
		return nil
	case strings.HasPrefix(rest, "/scim/"):
		st, err := g.state()
		if err != nil {
			return caddyhttp.Error(http.StatusServiceUnavailable, err)
		}
		g.serveSCIM(st, w, r, rest) // metrics.go
		return nil
	case strings.HasPrefix(rest, "/saml/"):
		parts := strings.Split(strings.TrimPrefix(rest, "/saml/"), "/")
		if len(parts) == 2 && parts[1] == "acs" {
			if r.Method != http.MethodPost {
				g.methodNotAllowed(w, "POST")
				return nil
			}
			g.acs(w, r, parts[0])
			return nil
		}
		if len(parts) == 2 && parts[1] == "slo" {
			g.serveSLO(w, r, parts[0]) // slo.go
			return nil
		}
		if len(parts) == 2 && parts[1] == "metadata" {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				g.methodNotAllowed(w, "GET")
				return nil
			}
			g.metadata(w, r, parts[0])
			return nil
		}
	}
	g.message(w, http.StatusNotFound, "Page not found", "There is nothing at this address.", "", true)
	return nil
}

func (g *Gateway) methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	g.message(w, http.StatusMethodNotAllowed, "Method not allowed", "This address does not accept that kind of request.", "", true)
}

func (g *Gateway) message(w http.ResponseWriter, status int, title, text, hint string, retry bool) {
	if status == http.StatusRequestEntityTooLarge {
		title = "Request too large" // not "Bad request": the input was fine but too big
	}
	m := pages.Message{Prefix: g.Prefix, Title: title, Text: text, Hint: hint}
	if retry {
		m.RetryURL = g.Prefix + "/login"
	}
	g.pages.Render(w, status, "message", m)
}

// login starts SP-initiated sign-in: find the org by the email's domain
// among verified domains of active orgs, remember the AuthnRequest for
// this browser, and send the browser to the IdP.
func (g *Gateway) login(w http.ResponseWriter, r *http.Request) {
	if status, ok := readForm(w, r, maxLoginBody); !ok {
		text := "The sign-in form could not be read."
		if status == http.StatusRequestEntityTooLarge {
			text = "The sign-in form was too large."
		}
		g.message(w, status, "Bad request", text, "", true)
		return
	}
	email := samlsp.NormalizeEmail(r.PostForm.Get("email"))
	ret := safeReturn(r.PostForm.Get("return"))
	form := pages.Login{Prefix: g.Prefix, Email: email, ReturnTo: ret}
	domain := samlsp.EmailDomain(email)
	if domain == "" || len(email) > 254 || strings.ContainsAny(email, " \t\r\n<>") {
		form.Error = "Enter your full work email address, like name@company.com."
		g.pages.Render(w, http.StatusBadRequest, "login", form)
		return
	}
	st, err := g.state()
	if err != nil {
		g.internalError(w, r, "opening state", err)
		return
	}
	orgID, err := st.store.OrgForDomain(domain)
	var org *store.Org
	if err == nil {
		org, err = st.store.GetOrg(orgID)
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		g.internalError(w, r, "looking up domain", err)
		return
	}
	if org == nil || org.State != store.OrgActive {
		form.Error = fmt.Sprintf("Single sign-on is not set up for %s. Check the address, or ask your IT administrator whether your organization uses SSO here.", domain)
		g.pages.Render(w, http.StatusOK, "login", form)
		return
	}
	g.startSAML(w, r, st, org, ret, false, false, email)
}

// startSAML sends the browser to org's IdP with an AuthnRequest that it
// remembers for this browser; force asks the IdP to authenticate the user
// anew (re-authentication before a sensitive change); test makes it an org
// admin's Test sign-in, whose answer starts no session (attempts.go). hint,
// the address the user typed, goes along as login_hint (Entra ID and others
// prefill their form with it, so nobody types their email twice; IdPs that do
// not know it ignore it, and the redirect binding's signature does not cover
// it, so it changes nothing else).
func (g *Gateway) startSAML(w http.ResponseWriter, r *http.Request, st *gatewayState, org *store.Org, ret string, force, test bool, hint string) {
	sp, err := g.provider(st, org)
	if err != nil {
		g.logger.Error("organization is active but its SAML settings are unusable", zap.String("org", org.ID), zap.Error(err))
		g.message(w, http.StatusServiceUnavailable, "Sign-in unavailable", "Your organization's single sign-on is misconfigured.", "Ask your IT administrator to check the SAML settings.", true)
		return
	}
	binding, err := st.sessions.Binding(w, r)
	if err != nil {
		g.internalError(w, r, "binding browser", err)
		return
	}
	makeRequest := sp.AuthnRequest
	if force {
		makeRequest = sp.ReauthnRequest
	}
	reqID, redirect, err := makeRequest("")
	if err != nil {
		g.internalError(w, r, "making AuthnRequest", err)
		return
	}
	now := time.Now()
	if err := st.store.PutAuthnRequest(&store.AuthnRequest{
		ID: reqID, OrgID: org.ID, Binding: binding, ReturnTo: ret, Test: test,
		Created: now, ExpiresAt: now.Add(time.Duration(g.app.AuthnRequestTTL)),
	}); err != nil {
		g.internalError(w, r, "saving AuthnRequest", err)
		return
	}
	if hint != "" {
		// Appended, not re-encoded: the signed parameters keep their
		// exact bytes.
		if redirect.RawQuery != "" {
			redirect.RawQuery += "&"
		}
		redirect.RawQuery += "login_hint=" + url.QueryEscape(hint)
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, redirect.String(), http.StatusSeeOther)
}

// acs receives the IdP's response (HTTP-POST binding) for orgID, taken
// from the path: the org's settings never come from the message.
func (g *Gateway) acs(w http.ResponseWriter, r *http.Request, orgID string) {
	if status, ok := readForm(w, r, maxFormBody); !ok {
		text := "The response from your identity provider was malformed."
		if status == http.StatusRequestEntityTooLarge {
			text = "The response from your identity provider was too large."
		}
		g.message(w, status, "Sign-in failed", text, "", true)
		return
	}
	if r.PostForm.Get("SAMLart") != "" || r.URL.Query().Get("SAMLart") != "" {
		g.message(w, http.StatusBadRequest, "Sign-in failed", "This gateway accepts SAML responses only with the HTTP-POST binding, not artifacts.", "Ask your IT administrator to check the SAML settings.", true)
		return
	}
	encoded := r.PostForm.Get("SAMLResponse")
	if encoded == "" {
		g.message(w, http.StatusBadRequest, "Sign-in failed", "No SAML response was received.", "", true)
		return
	}
	st, err := g.state()
	if err != nil {
		g.internalError(w, r, "opening state", err)
		return
	}
	// What arrived, for the org's sign-in attempts view, read under the
	// same limits as the validation below and before it can refuse.
	att := &attempt{shape: samlsp.Inspect(encoded, time.Now())}
	org, err := st.store.GetOrg(orgID)
	if errors.Is(err, store.ErrNotFound) {
		g.message(w, http.StatusNotFound, "Sign-in failed", "This sign-in address does not belong to any organization.", "", true)
		return
	}
	if err != nil {
		g.internalError(w, r, "loading org", err)
		return
	}
	sp, err := g.provider(st, org)
	if err != nil && org.State != store.OrgActive {
		g.refuse(w, r, st, att, org.ID, "", "org inactive", "org-inactive", http.StatusForbidden, "Sign-in unavailable",
			"Single sign-on is not active for your organization.", "Ask your IT administrator.")
		return
	}
	if err != nil {
		g.internalError(w, r, "building provider", err)
		return
	}

	// Only requests this browser started can be answered.
	var possible []string
	byID := map[string]*store.AuthnRequest{}
	if binding, ok := st.sessions.BindingFromRequest(r); ok {
		reqs, err := st.store.AuthnRequestsForBinding(binding)
		if err != nil {
			g.internalError(w, r, "loading AuthnRequests", err)
			return
		}
		for _, q := range reqs {
			// Before activation, only an admin's Test sign-in is answered.
			if q.OrgID == org.ID && (q.Test || org.State == store.OrgActive) {
				possible = append(possible, q.ID)
				byID[q.ID] = q
			}
		}
	}
	// Until the response says which request it answers, it is a test if
	// every request it could answer is one.
	att.test = len(possible) > 0
	for _, q := range byID {
		att.test = att.test && q.Test
	}
	if org.State != store.OrgActive && len(possible) == 0 {
		g.refuse(w, r, st, att, org.ID, "", "org inactive", "org-inactive", http.StatusForbidden, "Sign-in unavailable",
			"Single sign-on is not active for your organization.", "Ask your IT administrator.")
		return
	}
	if len(possible) == 0 && !org.AllowIdPInitiated {
		g.refuse(w, r, st, att, org.ID, "", "no outstanding request for this browser", "unsolicited", http.StatusBadRequest, "Sign-in failed",
			"This sign-in was not started here, or took too long.", "Start again from the sign-in page, in the same browser.")
		return
	}

	// Everything up to CompleteSignIn only reads: a refusal must leave the
	// AuthnRequest outstanding, the assertion unrecorded and the user
	// store as it was, so that nothing but the audit event and the sign-in
	// attempt show it.
	ident, err := sp.ParseResponse(encoded, possible)
	if errors.Is(err, samlsp.ErrRefused) {
		g.refuse(w, r, st, att, org.ID, "", err.Error(), samlsp.ReasonFor(err, att.shape).Code, http.StatusForbidden, "Sign-in failed",
			"The response from your identity provider could not be accepted.", "Try again. If it keeps happening, give your IT administrator the reference code below.")
		return
	}
	if err != nil {
		g.internalError(w, r, "validating SAML response", err)
		return
	}
	if q := byID[ident.InResponseTo]; q != nil {
		att.test = q.Test
	}
	samlsp.Decrypted(att.shape, ident)
	if ident.InResponseTo != "" && byID[ident.InResponseTo] == nil {
		// ParseResponse matched it against possible; this is a guard.
		g.refuse(w, r, st, att, org.ID, ident.Email, "response answers no request of this browser", "request-mismatch", http.StatusBadRequest, "Sign-in failed",
			"This sign-in was not started here, or took too long.", "Start again from the sign-in page, in the same browser.")
		return
	}

	// The asserted identity must be in one of this org's verified domains:
	// an IdP can only vouch for its own organization's people.
	if owner, err := st.store.OrgForDomain(samlsp.EmailDomain(ident.Email)); err != nil || owner != org.ID {
		g.refuse(w, r, st, att, org.ID, ident.Email, "asserted email outside the org's verified domains", "domain", http.StatusForbidden, "Access denied",
			"Your account's email domain is not verified for this organization.", "Ask your IT administrator.")
		return
	}

	limits := g.app.orgLimits()
	if e := checkAsserted(ident, limits); e != nil {
		g.refuseOverLimit(w, r, st, att, org.ID, ident.Email, e)
		return
	}

	// The user is looked up outside the sign-in's write. One created
	// with this identity in between (provisioned, or signed in on another
	// replica) makes that write fail having written nothing: the sign-in
	// is decided again, with them on file.
	for try := 1; g.admit(w, r, st, att, org, ident, limits, try < maxAdmitTries); try++ {
	}
}

// maxAdmitTries bounds how often admit decides one sign-in: a second
// try finds the user that made the first fail, so a third is rare.
const maxAdmitTries = 3

// admit decides a validated sign-in from the user on file, and writes it
// or answers the refusal. It returns true, having answered nothing, when
// the write found a user created since the look-up and again allows
// another try.
func (g *Gateway) admit(w http.ResponseWriter, r *http.Request, st *gatewayState, att *attempt, org *store.Org, ident *samlsp.Identity, limits scim.Limits, again bool) bool {
	user, err := findUser(st.store, org, ident)
	if errors.Is(err, errIdentityMismatch) {
		g.refuse(w, r, st, att, org.ID, ident.Email, err.Error(), "identity-mismatch", http.StatusForbidden, "Access denied",
			"Your sign-in does not match the account on file for this email.", "Ask your IT administrator to check your account. If your identity provider account was replaced, they can unlink the old one on the Users page.")
		return false
	}
	if err != nil {
		g.internalError(w, r, "linking user", err)
		return false
	}
	if user != nil && !user.Active {
		g.refuse(w, r, st, att, org.ID, ident.Email, "user deactivated", "deactivated", http.StatusForbidden, "Access denied",
			"Your account is deactivated in your organization's directory.", "Ask your IT administrator.")
		return false
	}
	groups := ident.Groups
	if ident.GroupsOverage {
		groups = nil
	}
	ok, err := authorized(st.store, org, user, groups)
	if err != nil {
		g.internalError(w, r, "checking authorization", err)
		return false
	}
	if !ok {
		reason, code, hint := groupRefusal(st.store, org, ident)
		g.refuse(w, r, st, att, org.ID, ident.Email, reason, code, http.StatusForbidden, "Access denied",
			"Your account is not allowed to use this application.", hint)
		return false
	}
	// The org's limits hold for users that sign-ins create as for SCIM's.
	refresh, err := planSave(st.store, org, user, ident, limits)
	if e, ok := errors.AsType[*limitRefusal](err); ok {
		g.refuseOverLimit(w, r, st, att, org.ID, ident.Email, e)
		return false
	}
	if err != nil {
		g.internalError(w, r, "checking the organization's limits", err)
		return false
	}
	if user != nil && user.Source != store.SourceSCIM && !refresh {
		g.logger.Warn("profile not refreshed: organization at its storage limit", zap.String("org", org.ID), zap.String("user_id", user.ID))
	}
	if att.test {
		g.acsTest(w, r, st, att, org, ident)
		return false
	}
	// Start ends the session this browser had, whoever it was for; its
	// record is written with the rest of the sign-in.
	pending, err := st.sessions.Prepare(r, store.Session{
		OrgID: org.ID, AuthMethod: authSAML, Groups: groups, NameID: ident.NameID,
		Email: ident.Email, AuthTime: ident.AuthnInstant, SessionIndex: ident.SessionIndex,
	}, ident.SessionNotOnOrAfter)
	if err != nil {
		g.internalError(w, r, "starting session", err)
		return false
	}
	actor := ident.Email
	if user != nil {
		actor = user.UserName
	}
	si := &store.SignIn{
		OrgID: org.ID, RequestID: ident.InResponseTo, ReplayKey: ident.ReplayKey, ReplayUntil: ident.ReplayUntil,
		EndSession: pending.Replaces, Session: &pending.Record,
		Audit: &store.AuditEvent{
			OrgID: org.ID, Actor: actor, Action: "login.saml", Outcome: "success", SourceIP: clientIP(r),
		},
		Attempt: newAttempt(r, att, org.ID, ident.Email, "success", "", ""),
	}
	userWrite(si, org, user, ident, limits, refresh)
	// Admitted: the only write, one transaction and so one synced
	// commit (it used to be five). Of two posts of the same response,
	// or two answers to one request, only one gets past it; a sign-in
	// it refuses has written nothing.
	done, err := st.store.CompleteSignIn(si)
	switch {
	case errors.Is(err, store.ErrMatched) && again:
		return true
	case errors.Is(err, store.ErrReplayed):
		g.refuseReplayed(w, r, st, att, org.ID, ident.Email)
		return false
	case errors.Is(err, store.ErrAnswered):
		g.refuseAnswered(w, r, st, att, org.ID, ident.Email)
		return false
	case errors.Is(err, store.ErrQuota): // another sign-in took the room after planSave
		g.refuseOverLimit(w, r, st, att, org.ID, ident.Email, errStorageFull(limits))
		return false
	case errors.Is(err, store.ErrUserLimit): // another sign-in took the last place after planSave
		g.refuseOverLimit(w, r, st, att, org.ID, ident.Email, errUserLimit(limits))
		return false
	case err != nil:
		g.internalError(w, r, "recording sign-in", err)
		return false
	}
	if err := pending.SetCookie(w, r); err != nil {
		// The session exists but the browser cannot refer to it: it
		// ends at its expiry unused, like any abandoned session.
		g.internalError(w, r, "setting the session cookie", err)
		return false
	}
	// The binding selected this sign-in's AuthnRequest and has no use
	// left; a later sign-in gets a new one.
	st.sessions.ClearBinding(w)
	g.observeSAMLSignIn(st, org.ID, "success", nil) // metrics.go
	g.logger.Info("signed in", zap.String("org", org.ID), zap.String("user_id", done.User.ID), zap.String("method", authSAML))
	returnTo := "/"
	if done.Request != nil && done.Request.ReturnTo != "" {
		returnTo = done.Request.ReturnTo
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, returnTo, http.StatusSeeOther)
	return false
}

// acsTest ends an org admin's Test sign-in that passed every check: the
// request and the assertion are used up, as a sign-in's are; nothing else
// happens: no user is saved, no session starts, the admin's own session
// stays.
func (g *Gateway) acsTest(w http.ResponseWriter, r *http.Request, st *gatewayState, att *attempt, org *store.Org, ident *samlsp.Identity) {
	_, err := st.store.ConsumeSignIn(org.ID, ident.InResponseTo, ident.ReplayKey, ident.ReplayUntil)
	switch {
	case errors.Is(err, store.ErrReplayed):
		g.refuseReplayed(w, r, st, att, org.ID, ident.Email)
	case errors.Is(err, store.ErrAnswered):
		g.refuseAnswered(w, r, st, att, org.ID, ident.Email)
	case err != nil:
		g.internalError(w, r, "recording sign-in", err)
	default:
		g.testPassed(w, r, st, att, org, ident)
	}
}

func (g *Gateway) refuseReplayed(w http.ResponseWriter, r *http.Request, st *gatewayState, att *attempt, orgID, email string) {
	g.refuse(w, r, st, att, orgID, email, "assertion already used", "replayed", http.StatusBadRequest, "Sign-in failed",
		"This sign-in was already completed.", "Start again from the sign-in page.")
}

func (g *Gateway) refuseAnswered(w http.ResponseWriter, r *http.Request, st *gatewayState, att *attempt, orgID, email string) {
	g.refuse(w, r, st, att, orgID, email, "AuthnRequest already answered", "already-answered", http.StatusBadRequest, "Sign-in failed",
		"This sign-in was already completed or has expired.", "Start again from the sign-in page.")
}

// refuse ends a sign-in attempt with a page, an audit event, a log line
// that carries the reason (never the assertion), and an entry in the org's
// sign-in attempts whose reference code the page shows. code is the
// reason's code for samlsp.ReasonByCode. A Test sign-in goes to its result on
// the attempts view instead.
func (g *Gateway) refuse(w http.ResponseWriter, r *http.Request, st *gatewayState, att *attempt, orgID, actor, reason, code string, status int, title, text, hint string) {
	ref := g.recordAttempt(st, r, att, orgID, actor, "refused", reason, code)
	g.logger.Warn("sign-in refused", zap.String("org", orgID), zap.String("reason", reason), zap.String("code", code),
		zap.String("ref", ref), zap.Bool("test", att.test), zap.String("remote_ip", clientIP(r)))
	if actor == "" {
		actor = "anonymous"
	}
	g.audit(st, r, orgID, actor, "login.saml", "denied", map[string]string{"reason": reason})
	if att.test && ref != "" {
		g.showAttempt(w, r, ref)
		return
	}
	m := pages.Message{Prefix: g.Prefix, Title: title, Text: text, Hint: hint, RetryURL: g.Prefix + "/login", Reference: ref}
	g.pages.Render(w, status, "message", m)
}

// refuseOverLimit refuses a sign-in over one of the org's limits.
func (g *Gateway) refuseOverLimit(w http.ResponseWriter, r *http.Request, st *gatewayState, att *attempt, orgID, actor string, e *limitRefusal) {
	code, title, hint := "too-large-values", "Sign-in failed", "Ask your IT administrator to check the attributes and groups your identity provider sends (its group filter, for one)."
	if e.status == http.StatusForbidden {
		code, title, hint = "org-full", "Sign-in unavailable", "Ask your IT administrator: removing the accounts of people who left makes room, or the gateway's operator can raise the limit."
	}
	g.refuse(w, r, st, att, orgID, actor, e.reason, code, e.status, title, e.text, hint)
}

// audit records a gateway event. Anyone can cause failures (a refused
// SAML response, a wrong password, a dead link) as often as they like, so
// those are aggregated: one event per kind and window, with a count.
func (g *Gateway) audit(st *gatewayState, r *http.Request, orgID, actor, action, outcome string, details map[string]string) {
	e := &store.AuditEvent{
		OrgID: orgID, Actor: actor, Action: action, Outcome: outcome, SourceIP: clientIP(r), Details: details,
	}
	var err error
	if outcome == "success" {
		err = st.store.AppendAudit(e)
	} else {
		err = st.store.AppendAuditAggregated(e)
	}
	if err != nil {
		g.logger.Error("writing audit event", zap.String("action", action), zap.Error(err))
	}
	if action == "login.saml" {
		g.observeSAMLSignIn(st, orgID, outcome, details) // metrics.go
	}
}

func (g *Gateway) internalError(w http.ResponseWriter, r *http.Request, what string, err error) {
	g.logger.Error("internal error", zap.String("during", what), zap.String("path", r.URL.Path), zap.Error(err))
	g.message(w, http.StatusInternalServerError, "Something went wrong", "The gateway could not complete your request.", "Try again in a moment.", true)
}

// metadata serves the org's SP metadata, which IT admins import into
// their IdP while setting up, so it is served before activation too.
func (g *Gateway) metadata(w http.ResponseWriter, r *http.Request, orgID string) {
	st, err := g.state()
	if err != nil {
		g.internalError(w, r, "opening state", err)
		return
	}
	if _, err := st.store.GetOrg(orgID); err != nil {
		g.message(w, http.StatusNotFound, "Not found", "No such organization.", "", false)
		return
	}
	u := g.app.SPURLs(orgID)
	md, err := samlsp.Metadata(samlsp.URLs(u), st.spKey, st.spCert)
	if err != nil {
		g.internalError(w, r, "rendering metadata", err)
		return
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	_, _ = w.Write(md)
}

func (g *Gateway) provider(st *gatewayState, org *store.Org) (*samlsp.Provider, error) {
	return samlsp.New(samlsp.Config{
		Org:         org,
		URLs:        samlsp.URLs(g.app.SPURLs(org.ID)),
		Key:         st.spKey,
		Certificate: st.spCert,
		Replay:      samlsp.NewReplayCache(st.store, org.ID),
	})
}

// safeReturn keeps a return URL only if it is a path on this site: it must
// start with one slash, and not with // or /\ (which browsers read as
// another host), and carry no scheme or host. Anything else becomes "".
func safeReturn(raw string) string {
	if raw == "" || len(raw) > 2048 || raw[0] != '/' {
		return ""
	}
	if len(raw) > 1 && (raw[1] == '/' || raw[1] == '\\') {
		return ""
	}
	if strings.ContainsAny(raw, "\\\r\n\t") {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return ""
	}
	return u.RequestURI()
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// clientIP is the remote address Caddy determined, honouring its
// trusted_proxies configuration.
func clientIP(r *http.Request) string {
	if v, ok := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any); ok {
		if ip, ok := v[caddyhttp.ClientIPVarKey].(string); ok && ip != "" {
			return ip
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func randomBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("random: %w", err)
	}
	return b, nil
}
