package caddymodule

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/ssogate/ssogate/caddymodule/pages"
	"github.com/ssogate/ssogate/caddymodule/session"
	"github.com/ssogate/ssogate/store"
)

// Re-authentication before sensitive changes (issue 15 §2).
//
// The configurator shares the application's origin unless the operator
// serves it on its own (see README), so a script injected anywhere in the
// application can read the CSRF token and act with the admin's session.
// What it cannot do is sign in: so changes that could hand the org's
// sign-in to someone else need a sign-in (SSO with ForceAuthn, or the
// password) no older than the app's reauth_window.
//
//	GET  {prefix}/reauth?return=PATH   the "Confirm it's you" page (needs a session)
//	POST {prefix}/reauth               form: csrf, return; starts the sign-in again

// reauthRequired is the error code of a JSON request refused for want of
// a recent sign-in.
const reauthRequired = "reauthentication_required"

// needsFreshSignIn tells whether a request to the admin routes (rest is
// the path after the prefix) is a sensitive change. Every state-changing
// request is, except the few below that cannot give anyone access: a new
// route is gated until someone decides otherwise.
func needsFreshSignIn(method, rest string) bool {
	if method == http.MethodGet || method == http.MethodHead {
		return false
	}
	switch {
	// Domains become verified only through DNS, which the org controls
	// elsewhere; adding or checking one changes nobody's access.
	case method == http.MethodPost && (rest == "/admin/domains" || rest == "/admin/domains/verify"):
		return false
	case method == http.MethodPost && rest == "/admin/api/domains":
		return false
	case method == http.MethodPost && strings.HasPrefix(rest, "/admin/api/domains/") && strings.HasSuffix(rest, "/verify"):
		return false
	// A Test sign-in starts no session and changes no setting (attempts.go).
	case method == http.MethodPost && rest == "/admin/signin-attempts/test":
		return false
	// Ticks on the checklist are the admin's notes.
	case method == http.MethodPost && strings.HasPrefix(rest, "/admin/steps/"):
		return false
	case method == http.MethodPut && strings.HasPrefix(rest, "/admin/api/steps/"):
		return false
	}
	return true
}

// requireFresh lets a sensitive change (needsFreshSignIn) through only
// from a session whose sign-in is within reauth_window; otherwise it
// answers: JSON clients get 403 with error reauthentication_required and
// the address of the re-auth page, browsers that page itself, which
// brings them back. It must run after the CSRF check, so that
// another site cannot learn anything from the answer.
func (g *Gateway) requireFresh(w http.ResponseWriter, r *http.Request, a *orgAdmin, isJSON bool, back string) bool {
	rest := strings.TrimPrefix(r.URL.Path, g.Prefix)
	if !needsFreshSignIn(r.Method, rest) {
		return true
	}
	window := time.Duration(g.app.ReauthWindow)
	age := time.Since(session.AuthTime(a.sess))
	if age <= window {
		return true
	}
	g.logger.Info("sensitive change needs a recent sign-in",
		zap.String("org", a.sess.OrgID), zap.String("user_id", a.sess.UserID),
		zap.String("path", r.URL.Path), zap.Duration("since_sign_in", age.Round(time.Second)))
	// In the org's trail too: a script in the application trying changes
	// with an admin's session shows up as a run of these.
	if st, err := g.state(); err == nil {
		g.audit(st, r, a.sess.OrgID, a.actor, "admin.change", "denied", map[string]string{
			"reason": "reauthentication required", "request": r.Method + " " + r.URL.Path,
		})
	}
	reauthURL := g.Prefix + "/reauth?return=" + url.QueryEscape(back)
	if isJSON {
		w.Header().Set(csrfHeader, a.csrf)
		writeJSONValue(w, http.StatusForbidden, map[string]string{
			"error":      reauthRequired,
			"message":    "this change needs a sign-in within the last " + window.String() + "; sign in again at reauth_url",
			"reauth_url": reauthURL,
		})
		return false
	}
	g.pages.Render(w, http.StatusForbidden, "reauth", pages.Reauth{
		Prefix: g.Prefix, CSRF: a.csrf, ReturnTo: back,
		Text: "This change needs a recent sign-in: sign in again, then make the change once more.",
	})
	return false
}

// serveReauth serves {prefix}/reauth.
func (g *Gateway) serveReauth(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPost:
		if status, ok := readForm(w, r, maxLoginBody); !ok {
			g.message(w, status, "Bad request", "The form could not be read.", "", true)
			return
		}
	default:
		g.methodNotAllowed(w, "GET, POST")
		return
	}
	st, ls, err := g.localStates()
	if err != nil {
		g.internalError(w, r, "opening state", err)
		return
	}
	ret := safeReturn(r.FormValue("return"))
	if ret == "" {
		ret = g.Prefix + "/admin/"
	}
	sess, err := st.sessions.Load(r)
	if err != nil {
		// Nothing to confirm: an ordinary sign-in will do.
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, g.Prefix+"/login?return="+url.QueryEscape(ret), http.StatusSeeOther)
		return
	}
	csrf := ls.csrf.Token("session:" + sess.ID)
	if r.Method != http.MethodPost {
		g.pages.Render(w, http.StatusOK, "reauth", pages.Reauth{
			Prefix: g.Prefix, CSRF: csrf, ReturnTo: ret,
			Text: "Sign in again to continue: some changes need a recent sign-in.",
		})
		return
	}
	if ls.origin.Check(r) != nil || !ls.csrf.Valid("session:"+sess.ID, r.PostForm.Get("csrf")) {
		g.csrfRefused(w, g.Prefix+"/reauth?return="+url.QueryEscape(ret))
		return
	}
	if sess.AuthMethod != authSAML {
		// The password form; its sign-in replaces this session.
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, g.Prefix+"/backup?org="+url.QueryEscape(sess.OrgID)+"&return="+url.QueryEscape(ret), http.StatusSeeOther)
		return
	}
	org, err := st.store.GetOrg(sess.OrgID)
	if err != nil || org.State != store.OrgActive {
		g.message(w, http.StatusForbidden, "Sign-in unavailable", "Single sign-on is not active for your organization.", "Sign in with a password instead.", true)
		return
	}
	g.startSAML(w, r, st, org, ret, true, false, sess.Email)
}
