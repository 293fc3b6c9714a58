package caddymodule

import (
	"fmt"

	"net/http"
	"net/url"
	"strings"
)

// The configurator on its own origin (issue 15 §2). A script injected
// into the application runs with the application's origin; when the
// configurator and its API answer on that origin too, the script can read
// their CSRF token and act as the org admin. Served on another origin,
// the browser's same-origin policy keeps the script from reading them,
// and their cross-origin protection refuses its requests.
//
// The other origin is base_url's host on another port: the session and
// its cookies stay host-only (`__Host-`), which browsers share across
// ports but never across hosts, so one sign-in serves both sites, and the
// SAML endpoints stay at base_url. (A separate host would need the
// session handed over between hosts, or cookies scoped to a parent
// domain, which every sibling subdomain would then receive.)

// parseAdminOrigin checks an admin_origin: scheme://host:port with
// base_url's scheme and host and another port.
func parseAdminOrigin(raw string, base *url.URL) (*url.URL, error) {
	if raw == "" {
		return nil, nil
	}
	u, err := parseBaseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("admin_origin: %w", err)
	}
	if base == nil {
		return nil, fmt.Errorf("admin_origin %q: the sso app has no base_url", raw)
	}
	if u.Scheme != base.Scheme || u.Hostname() != base.Hostname() {
		return nil, fmt.Errorf("admin_origin %q: must have base_url's scheme and host (%s://%s) and another port: "+
			"browsers share the session cookie across ports of one host, not across hosts", raw, base.Scheme, base.Hostname())
	}
	if effectivePort(u) == effectivePort(base) {
		return nil, fmt.Errorf("admin_origin %q: must use another port than base_url %s, or it is the same origin", raw, base)
	}
	return u, nil
}

func effectivePort(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "https" {
		return "443"
	}
	return "80"
}

// isAdminRoute tells whether rest (the path after the prefix) belongs to
// the configurator, the users page, the org admin API or re-auth.
func isAdminRoute(rest string) bool {
	return rest == "/admin" || strings.HasPrefix(rest, "/admin/") || rest == "/reauth"
}

// adminElsewhere answers a request for an admin route on a site whose
// configurator is served at admin_origin: browsers' page requests are
// redirected there, anything else is 404. It returns false for other
// requests.
func (g *Gateway) adminElsewhere(w http.ResponseWriter, r *http.Request, rest string) bool {
	if g.adminURL == nil || !isAdminRoute(rest) {
		return false
	}
	if wantsHTML(r) {
		target := *g.adminURL
		target.Path = r.URL.Path
		target.RawPath = r.URL.RawPath
		target.RawQuery = r.URL.RawQuery
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, target.String(), http.StatusFound)
		return true
	}
	writeJSONError(w, http.StatusNotFound, "the configurator and its API are served at "+g.adminURL.String())
	return true
}

// serveAdminSiteOther answers, on an admin_only site, a request outside
// the gateway's own routes: there is no application here.
func (g *Gateway) serveAdminSiteOther(w http.ResponseWriter, r *http.Request) {
	if wantsHTML(r) && (r.URL.Path == "/" || r.URL.Path == "") {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, g.Prefix+"/admin/", http.StatusFound)
		return
	}
	g.message(w, http.StatusNotFound, "Page not found", "This site serves only the sign-in and configuration pages.", "", false)
}
