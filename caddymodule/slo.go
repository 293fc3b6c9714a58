package caddymodule

import (
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/ssogate/ssogate/caddymodule/pages"
	"github.com/ssogate/ssogate/caddymodule/samlsp"
	"github.com/ssogate/ssogate/store"
)

// SAML Single Logout at <prefix>/saml/<org>/slo (see samlsp/slo.go).

// sloCookie remembers, for one browser, the LogoutRequest it was sent to
// the IdP with and where to go once the IdP answers. SameSite=Lax, not
// Strict: the answer arrives on a navigation the IdP started.
const sloCookie = "ssogate_slo"

// sloCookieAge bounds how long the IdP may take to answer.
const sloCookieAge = 10 * time.Minute

// sloURLs are an org's single-logout endpoints.
func (g *Gateway) sloURLs(org *store.Org) samlsp.SLO {
	return samlsp.SLO{SPURL: samlsp.SLOURL(g.app.SPURLs(org.ID).EntityID), IdPURL: org.IdP.SLOURL}
}

// startSLO sends the browser whose SAML session just ended to the org's
// IdP to end the IdP session too, when the IdP has a single logout
// endpoint. It reports whether it answered the request; when it did not,
// the caller finishes the sign-out locally (the local session is over in
// every case, so a failure here never leaves anyone signed in).
func (g *Gateway) startSLO(w http.ResponseWriter, r *http.Request, st *gatewayState, sess *store.Session, ret string) bool {
	if sess == nil || sess.AuthMethod != authSAML || sess.NameID == "" {
		return false
	}
	org, err := st.store.GetOrg(sess.OrgID)
	if err != nil || org.IdP.SLOURL == "" {
		return false
	}
	sp, err := g.provider(st, org)
	if err != nil {
		g.logger.Warn("single logout: building the SP", zap.String("org", org.ID), zap.Error(err))
		return false
	}
	id, u, err := sp.LogoutRequest(g.sloURLs(org), sess.NameID, "")
	if err != nil {
		g.logger.Warn("single logout: making the LogoutRequest", zap.String("org", org.ID), zap.Error(err))
		return false
	}
	// The return path is on this site (logoutReturn) and is checked again
	// when read back; base64 keeps it one cookie-safe token.
	http.SetCookie(w, &http.Cookie{
		Name:     g.cookieName(sloCookie),
		Value:    id + "." + base64.RawURLEncoding.EncodeToString([]byte(ret)),
		Path:     "/",
		MaxAge:   int(sloCookieAge / time.Second),
		Secure:   g.secure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
	return true
}

// serveSLO answers the IdP at the org's SLO endpoint: its LogoutResponse
// to a sign-out this browser started, or its own LogoutRequest.
func (g *Gateway) serveSLO(w http.ResponseWriter, r *http.Request, orgID string) {
	if r.Method != http.MethodGet {
		// Only the HTTP-Redirect binding: the one the gateway uses and
		// asks for, and one whose signature covers the whole message.
		g.methodNotAllowed(w, "GET")
		return
	}
	st, err := g.state()
	if err != nil {
		g.internalError(w, r, "opening state", err)
		return
	}
	org, err := st.store.GetOrg(orgID)
	if err != nil || org.IdP.SLOURL == "" {
		g.message(w, http.StatusNotFound, "Not found", "This organization has no single logout.", "", false)
		return
	}
	sp, err := g.provider(st, org)
	if err != nil {
		g.internalError(w, r, "building the SP", err)
		return
	}
	q := r.URL.Query()
	switch {
	case q.Has("SAMLResponse"):
		g.sloResponse(w, r, st, org, sp)
	case q.Has("SAMLRequest"):
		g.sloRequest(w, r, st, org, sp)
	default:
		g.message(w, http.StatusBadRequest, "Bad request", "This address expects a SAML logout message.", "", false)
	}
}

// sloResponse finishes a sign-out this browser started.
func (g *Gateway) sloResponse(w http.ResponseWriter, r *http.Request, st *gatewayState, org *store.Org, sp *samlsp.Provider) {
	id, ret := "", ""
	if c, err := r.Cookie(g.cookieName(sloCookie)); err == nil {
		var enc string
		id, enc, _ = strings.Cut(c.Value, ".")
		if b, err := base64.RawURLEncoding.DecodeString(enc); err == nil {
			ret = safeReturn(string(b))
		}
	}
	http.SetCookie(w, &http.Cookie{Name: g.cookieName(sloCookie), Value: "", Path: "/", MaxAge: -1,
		Secure: g.secure, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	if err := sp.ParseLogoutResponse(g.sloURLs(org), r, []string{id}); err != nil {
		g.logger.Warn("single logout response refused", zap.String("org", org.ID), zap.Error(err), zap.String("remote_ip", clientIP(r)))
		g.audit(st, r, org.ID, "anonymous", "logout.slo", "denied", map[string]string{"reason": sloReason(err)})
		g.message(w, http.StatusBadRequest, "Signed out here",
			"You are signed out of this site, but your organization's sign-in service did not confirm that it signed you out there too.",
			"Close the browser to end that session, or sign out at your organization's portal.", true)
		return
	}
	if ret != "" {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, ret, http.StatusSeeOther)
		return
	}
	g.pages.Render(w, http.StatusOK, "login", pages.Login{Prefix: g.Prefix, Notice: "You have signed out, here and at your organization's sign-in service."})
}

// sloRequest ends the sessions the IdP signed out, and answers the IdP.
// A LogoutRequest names a subject, not an account: it ends the org's
// SAML sessions started by assertions about exactly that NameID (and of
// the IdP sessions it names, if any), in this browser or any other, and
// never a password or backup session.
func (g *Gateway) sloRequest(w http.ResponseWriter, r *http.Request, st *gatewayState, org *store.Org, sp *samlsp.Provider) {
	slo := g.sloURLs(org)
	l, err := sp.ValidateLogoutRequest(slo, r)
	if err != nil {
		g.logger.Warn("single logout request refused", zap.String("org", org.ID), zap.Error(err), zap.String("remote_ip", clientIP(r)))
		g.audit(st, r, org.ID, "anonymous", "logout.idp", "denied", map[string]string{"reason": sloReason(err)})
		g.message(w, http.StatusBadRequest, "Sign-out refused", "The sign-out request could not be verified.", "", false)
		return
	}
	// Read before the sessions go: whether this browser's was among them.
	own, _ := st.sessions.Load(r)
	ended, err := st.store.DeleteSAMLSessions(org.ID, l.NameID, l.SessionIndexes)
	if err != nil {
		g.internalError(w, r, "ending sessions", err)
		return
	}
	if own != nil && own.OrgID == org.ID && own.AuthMethod == authSAML && own.NameID == l.NameID &&
		(len(l.SessionIndexes) == 0 || own.SessionIndex == "" || slices.Contains(l.SessionIndexes, own.SessionIndex)) {
		_ = st.sessions.End(w, r)
	}
	g.audit(st, r, org.ID, l.NameID, "logout.idp", "success", map[string]string{"sessions_ended": strconv.Itoa(ended)})
	relay := r.URL.Query().Get("RelayState")
	if len(relay) > 80 { // the binding's limit; never echo more
		relay = ""
	}
	u, err := sp.LogoutResponse(slo, l.RequestID, relay)
	if err != nil {
		g.internalError(w, r, "answering the IdP", err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

// sloReason is a bounded audit reason.
func sloReason(err error) string {
	if errors.Is(err, samlsp.ErrRefused) {
		return "invalid message"
	}
	return "error"
}
