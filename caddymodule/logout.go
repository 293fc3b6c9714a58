package caddymodule

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/ssogate/ssogate/caddymodule/pages"
)

// The sign-out contract for applications (README "Signing out"):
//
//   - GET <prefix>/logout[?rd=<return>] shows a page that asks to confirm
//     and POSTs; a GET never signs anyone out, so an <img> or a link
//     prefetch on any page cannot end a session.
//   - POST <prefix>/logout (from this origin) with an optional rd form
//     field ends the session, then sends the browser to rd, or shows the
//     sign-in page saying that the user signed out.
//   - rd (also accepted as `return`, the sign-in page's name) must be on
//     this site: a path, or an absolute URL whose origin is base_url's.
//     Anything else is ignored, so the endpoint is no open redirect.

// maxLogoutBody caps the sign-out form: a return path.
const maxLogoutBody = 8 << 10

func (g *Gateway) serveLogout(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		g.logoutConfirm(w, r)
	case http.MethodPost:
		g.logout(w, r)
	default:
		g.methodNotAllowed(w, "GET, POST")
	}
}

// logoutReturn reads rd (or return) from a parsed form or query.
func (g *Gateway) logoutReturn(v url.Values) string {
	raw := v.Get("rd")
	if raw == "" {
		raw = v.Get("return")
	}
	return g.sameOriginReturn(raw)
}

// sameOriginReturn keeps raw only if it leads to this site: a path
// (safeReturn's rules), or an absolute URL with base_url's scheme, host
// and port, reduced to its path. Hosts compare exactly, after ASCII
// lowercasing by url.Parse's rules; no other origin passes.
func (g *Gateway) sameOriginReturn(raw string) string {
	if raw == "" || len(raw) > 2048 {
		return ""
	}
	if strings.HasPrefix(raw, "/") {
		return safeReturn(raw)
	}
	u, err := url.Parse(raw)
	if err != nil || u.User != nil || u.Opaque != "" || strings.ContainsAny(raw, "\\\r\n\t") {
		return ""
	}
	base := g.app.baseURL
	if u.Scheme != base.Scheme { // url.Parse lowercases the scheme
		return ""
	}
	if asciiLower(u.Host) != asciiLower(base.Host) {
		return ""
	}
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	if u.RawQuery != "" {
		p += "?" + u.RawQuery
	}
	return safeReturn(p)
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}

// logoutConfirm shows the confirmation page.
func (g *Gateway) logoutConfirm(w http.ResponseWriter, r *http.Request) {
	data := pages.Logout{Prefix: g.Prefix, ReturnTo: g.logoutReturn(r.URL.Query())}
	if st, err := g.state(); err == nil {
		if sess, err := st.sessions.Load(r); err == nil {
			data.SignedIn = true
			data.Email = sess.Email
		}
	}
	g.setHSTS(w)
	g.pages.Render(w, http.StatusOK, "logout", data)
}

// logout ends the session, then returns to rd or shows the sign-in page.
func (g *Gateway) logout(w http.ResponseWriter, r *http.Request) {
	st, ls, err := g.localStates()
	if err != nil {
		g.internalError(w, r, "opening state", err)
		return
	}
	// SameSite=Lax already keeps the session cookie off a cross-site
	// POST; refusing what the browser marks cross-origin also covers
	// sibling subdomains, which count as same-site. The application's
	// own sign-out buttons post from its origin.
	if err := ls.origin.Check(r); err != nil {
		g.csrfRefused(w, g.Prefix+"/logout")
		return
	}
	if status, ok := readForm(w, r, maxLogoutBody); !ok {
		g.message(w, status, "Bad request", "The sign-out form could not be read.", "", false)
		return
	}
	ret := g.logoutReturn(r.PostForm)
	if ret == "" {
		ret = g.logoutReturn(r.URL.Query())
	}
	sess, err := st.sessions.Load(r)
	if err == nil {
		g.audit(st, r, sess.OrgID, sess.UserID, "logout", "success", nil)
	} else {
		sess = nil
	}
	if err := st.sessions.End(w, r); err != nil {
		g.internalError(w, r, "ending session", err)
		return
	}
	// The session is over here; where the org's IdP has a single logout
	// endpoint, end its session there too (slo.go).
	if g.startSLO(w, r, st, sess, ret) {
		return
	}
	if ret != "" {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, ret, http.StatusSeeOther)
		return
	}
	g.pages.Render(w, http.StatusOK, "login", pages.Login{Prefix: g.Prefix, Notice: "You have signed out."})
}
