package caddymodule

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/ssogate/ssogate/caddymodule/orgs"
	"github.com/ssogate/ssogate/caddymodule/pages"
	"github.com/ssogate/ssogate/caddymodule/samlsp"
	"github.com/ssogate/ssogate/store"
)

// Sign-in attempts (issue 11 §4): what an IT admin needs to fix the IdP
// when sign-in fails, on the gateway's own routes, for the session's org:
//
//	GET  {prefix}/admin/signin-attempts[?ref=CODE]    the page
//	POST {prefix}/admin/signin-attempts/test          form: csrf; starts a Test sign-in
//	POST {prefix}/admin/signin-attempts/idp-initiated form: csrf, allow=on|off
//	GET  {prefix}/admin/api/signin-attempts[?ref=CODE] the same as JSON
//
// Behind the users page's checks (an org admin's session, CSRF token on
// posts); turning IdP-initiated sign-in on also needs a recent sign-in.

// attempt is what the ACS learns about one post, for the attempts view.
type attempt struct {
	// shape is what arrived (nil when nothing readable did).
	shape *samlsp.Shape
	// test: the post answers an org admin's Test sign-in.
	test bool
}

// recordAttempt stores the attempt and returns its reference code, or ""
// when it could not be stored (logged; the sign-in goes on regardless).
// email is recorded only once the response has validated: before that it
// is whatever a stranger wrote.
func (g *Gateway) recordAttempt(st *gatewayState, r *http.Request, att *attempt, orgID, email, outcome, detail, code string) string {
	a := newAttempt(r, att, orgID, email, outcome, detail, code)
	if err := st.store.AddSignInAttempt(a); err != nil {
		g.logger.Error("recording sign-in attempt", zap.String("org", orgID), zap.Error(err))
		return ""
	}
	return a.Ref
}

// newAttempt is the record of one attempt (see recordAttempt).
func newAttempt(r *http.Request, att *attempt, orgID, email, outcome, detail, code string) *store.SignInAttempt {
	a := &store.SignInAttempt{
		OrgID: orgID, Outcome: outcome, Test: att.test, Detail: detail, Email: email,
		SourceIP: clientIP(r), Shape: att.shape,
	}
	if code != "" {
		reason := samlsp.ReasonByCode(code)
		a.Reason, a.Problem, a.Fix = reason.Code, reason.Problem, reason.Fix
	}
	return a
}

// groupRefusal words a refusal for want of the admin group by what the
// gateway knew: provisioning's membership, a groups link instead of the
// groups, no groups attribute at all, or groups without the admin group.
func groupRefusal(st *store.Store, org *store.Org, ident *samlsp.Identity) (reason, code, hint string) {
	if _, err := scimAdminGroupID(st, org); err == nil {
		return "not in the admin group (as provisioned by SCIM)", "not-in-group",
			"Provisioning (SCIM) does not list you in the " + org.AdminGroup.Name + " group. Ask your IT administrator to add you to it."
	}
	switch {
	case ident.GroupsOverage:
		return "not in the admin group: the IdP sent a groups link (overage), and no admin group is provisioned", "groups-overage",
			"Your identity provider sent a link to your groups instead of the groups (you are in many groups), and provisioning has not told us your admin group membership. Ask your IT administrator to set up user provisioning (SCIM)."
	case len(ident.Groups) == 0:
		return "not in the admin group: the IdP sent no groups attribute", "no-groups",
			"Your identity provider does not send your group memberships, so the gateway cannot see that you are an administrator. Ask your IT administrator to add a groups claim to this application (or to set up provisioning), and give them the reference code below."
	}
	return "not in the admin group", "not-in-group",
		"Ask your IT administrator to add you to the " + org.AdminGroup.Name + " group."
}

// testPassed ends a Test sign-in that every check admitted, after the
// ACS has used up its request and assertion: it records the success and
// shows it, and writes nothing else (no user, no session).
func (g *Gateway) testPassed(w http.ResponseWriter, r *http.Request, st *gatewayState, att *attempt, org *store.Org, ident *samlsp.Identity) {
	st.sessions.ClearBinding(w)
	ref := g.recordAttempt(st, r, att, org.ID, ident.Email, "success", "", "")
	g.audit(st, r, org.ID, ident.Email, "login.saml.test", "success", nil)
	g.showAttempt(w, r, ref)
}

// showAttempt sends the browser to the attempts view, opened at ref.
func (g *Gateway) showAttempt(w http.ResponseWriter, r *http.Request, ref string) {
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, g.Prefix+"/admin/signin-attempts?ref="+url.QueryEscape(ref), http.StatusSeeOther)
}

// cleanRef is a reference code as typed: trimmed, upper case (the codes'
// alphabet is ASCII), and "" unless it can be one.
func cleanRef(s string) string {
	s = strings.ToUpper(strings.TrimSpace(s))
	if len(s) != store.RefLength {
		return ""
	}
	for _, c := range s {
		if !strings.ContainsRune(store.RefAlphabet, c) {
			return ""
		}
	}
	return s
}

// listAttempts reads the admin's org's attempts; a ref that cannot be a
// code finds nothing rather than everything.
func listAttempts(st *gatewayState, orgID, rawRef string) (string, []*store.SignInAttempt, error) {
	ref := cleanRef(rawRef)
	if typed := strings.TrimSpace(rawRef); typed != "" && ref == "" {
		// Shown back on the page as typed, within reason.
		if len(typed) > 2*store.RefLength {
			typed = typed[:2*store.RefLength] + "…"
		}
		return strings.ToValidUTF8(typed, ""), []*store.SignInAttempt{}, nil
	}
	list, err := st.store.ListSignInAttempts(orgID, ref)
	if err != nil {
		return ref, nil, fmt.Errorf("listing sign-in attempts: %w", err)
	}
	return ref, list, nil
}

func (g *Gateway) attemptsPage(w http.ResponseWriter, r *http.Request, st *gatewayState, ls *localState, a *orgAdmin, _ string) {
	if wantsJSON(r) {
		g.apiAttempts(w, r, st, ls, a, "")
		return
	}
	page := pages.Attempts{}
	switch r.URL.Query().Get("done") {
	case "idp-initiated-on":
		page.Notice = "IdP-initiated sign-in is on."
	case "idp-initiated-off":
		page.Notice = "IdP-initiated sign-in is off."
	}
	g.renderAttempts(w, r, st, a, page, http.StatusOK)
}

func (g *Gateway) renderAttempts(w http.ResponseWriter, r *http.Request, st *gatewayState, a *orgAdmin, page pages.Attempts, status int) {
	org, err := st.store.GetOrg(a.sess.OrgID)
	if err != nil {
		g.internalError(w, r, "loading org", err)
		return
	}
	ref, list, err := listAttempts(st, org.ID, r.URL.Query().Get("ref"))
	if err != nil {
		g.internalError(w, r, "listing attempts", err)
		return
	}
	page.Prefix, page.OrgName, page.Me, page.CSRF = g.Prefix, org.Name, a.actor, a.csrf
	page.Active, page.Ref, page.AllowIdPInitiated = org.State == store.OrgActive, ref, org.AllowIdPInitiated
	_, perr := g.provider(st, org)
	page.CanTest = perr == nil
	for _, at := range list {
		page.Attempts = append(page.Attempts, attemptRow(at))
	}
	g.pages.Render(w, status, "attempts", page)
}

func attemptRow(at *store.SignInAttempt) pages.AttemptRow {
	row := pages.AttemptRow{
		Ref: at.Ref, Time: at.Time.UTC().Format("2006-01-02 15:04:05 UTC"), Outcome: at.Outcome, Test: at.Test,
		Problem: at.Problem, Fix: at.Fix, Detail: at.Detail, Email: at.Email, SourceIP: at.SourceIP,
	}
	s := at.Shape
	if s == nil {
		return row
	}
	row.Shape = true
	row.Issuer, row.Destination, row.StatusCode, row.NameIDFormat = s.Issuer, s.Destination, s.StatusCode, s.NameIDFormat
	row.Signed = "nothing"
	if len(s.Signed) > 0 {
		row.Signed = strings.Join(s.Signed, " and ")
	}
	if s.Encrypted {
		row.Encrypted = "assertion encrypted"
	}
	row.SignatureAlgs, row.DigestAlgs = strings.Join(s.SignatureAlgorithms, ", "), strings.Join(s.DigestAlgorithms, ", ")
	row.Clock = "unknown"
	if d := s.ClockDifference; d != nil {
		switch {
		case *d > 0:
			row.Clock = fmt.Sprintf("the IdP is %s ahead (or the response took that long)", time.Duration(*d)*time.Second)
		case *d < 0:
			row.Clock = fmt.Sprintf("issued %s before it arrived (IdP clock behind, or a slow round trip)", time.Duration(-*d)*time.Second)
		default:
			row.Clock = "none"
		}
	}
	row.AttributeNames, row.GroupValues = s.AttributeNames, s.GroupValues
	return row
}

// apiAttempts is GET {prefix}/admin/api/signin-attempts[?ref=CODE]:
// {"attempts": [...]}, newest first, each with its reason's code, problem
// and fix and the shape of what arrived.
func (g *Gateway) apiAttempts(w http.ResponseWriter, r *http.Request, st *gatewayState, _ *localState, a *orgAdmin, _ string) {
	_, list, err := listAttempts(st, a.sess.OrgID, r.URL.Query().Get("ref"))
	if err != nil {
		g.serviceError(w, r, err, true)
		return
	}
	w.Header().Set(csrfHeader, a.csrf)
	writeJSONValue(w, http.StatusOK, map[string]any{"attempts": list})
}

// attemptsTest starts a Test sign-in for the admin's org, active or not.
func (g *Gateway) attemptsTest(w http.ResponseWriter, r *http.Request, st *gatewayState, _ *localState, a *orgAdmin, _ string) {
	org, err := st.store.GetOrg(a.sess.OrgID)
	if err != nil {
		g.internalError(w, r, "loading org", err)
		return
	}
	if _, err := g.provider(st, org); err != nil {
		g.renderAttempts(w, r, st, a, pages.Attempts{Error: "The identity provider's settings are incomplete: enter them in the SAML step first."}, http.StatusConflict)
		return
	}
	g.audit(st, r, org.ID, a.actor, "login.saml.test.start", "success", nil)
	g.startSAML(w, r, st, org, "", false, true, "")
}

// attemptsIdPInitiated switches IdP-initiated sign-in for the admin's org.
func (g *Gateway) attemptsIdPInitiated(w http.ResponseWriter, r *http.Request, st *gatewayState, _ *localState, a *orgAdmin, _ string) {
	var allow bool
	switch r.PostForm.Get("allow") {
	case "on":
		allow = true
	case "off":
	default:
		g.renderAttempts(w, r, st, a, pages.Attempts{Error: "Choose on or off."}, http.StatusBadRequest)
		return
	}
	svc, err := g.app.Orgs()
	if err != nil {
		g.internalError(w, r, "opening orgs", err)
		return
	}
	if _, err := svc.UpdateOrg(a.actor, a.sess.OrgID, orgs.OrgUpdate{AllowIdPInitiated: &allow}); err != nil {
		g.serviceError(w, r, err, false)
		return
	}
	done := "idp-initiated-off"
	if allow {
		done = "idp-initiated-on"
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, g.Prefix+"/admin/signin-attempts?done="+done, http.StatusSeeOther)
}
