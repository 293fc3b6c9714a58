package orgs

import (
	"net/http"
	"strings"
)

// OrgHandler returns the JSON API an organization's admins use (the
// configurator's API), with the same code and rules as the operator's
// AdminHandler routes under /orgs/{org}, but for one organization that the
// caller determines: orgOf gives the organization of a request and actorOf
// the admin to record in the audit trail. The caller authenticates the
// admin, checks that they administer that organization, checks CSRF and,
// for sensitive changes, that the admin signed in recently (the gateway's
// reauth_window) before the request gets here; this handler does no
// access control of its own, and nothing in a request can name another
// organization.
//
// Routes under prefix (for example "/sso/admin/api/org"):
//
//	GET    {prefix}                            the organization, with its steps
//	GET    {prefix}/domains                    list
//	POST   {prefix}/domains                    {"name"} → 201
//	DELETE {prefix}/domains/{domain}           → 204
//	POST   {prefix}/domains/{domain}/verify    DNS check (no "force": that is the operator's)
//	PUT    {prefix}/idp                        {"entity_id","sso_url","certificates"}, {"metadata_xml"} or {"metadata_url"}
//	PUT    {prefix}/admin-group                {"name","id"}
//	PUT    {prefix}/config-group               {"name","id"} (both empty: local admins only)
//	PUT    {prefix}/steps/{step}               {"done": true|false}
//	POST   {prefix}/scim-token                 → 201 {"token","scim_base_url"} (shown once)
//	POST   {prefix}/activate                   → 200, or 409 with "missing"
//	POST   {prefix}/deactivate
//	GET    {prefix}/audit?limit=N&before=CURSOR  (paged as the operator's)
//	GET    {prefix}/users?role=&status=
//	POST   {prefix}/local-users                {"email","role"?,"display_name"?} → 201 set-password link
//	DELETE {prefix}/local-users/{user}         → 204
//	POST   {prefix}/local-users/{user}/invite  → 201 new link for an account without a password
//	POST   {prefix}/users/{user}/unlink        forget the user's stored IdP identifier (not SCIM users)
//	GET    {prefix}/backup-login
//	PUT    {prefix}/backup-login               {"user"}
//
// What only the operator may do (create, rename or delete organizations,
// allow IdP-initiated sign-in, vouch for a domain, reset the backup login's
// password) is not there. Requests for which orgOf returns "" are refused
// with 403.
func (s *Service) OrgHandler(prefix string, orgOf func(*http.Request) string, actorOf func(*http.Request) string) http.Handler {
	prefix = strings.TrimSuffix(prefix, "/")
	a := &adminAPI{s: s, prefix: prefix, orgOf: orgOf, actorOf: actorOf}
	mux := a.mux([]route{
		{"GET", "", a.showOrg},
		{"GET", "/domains", a.listDomains},
		{"POST", "/domains", a.addDomain},
		{"DELETE", "/domains/{domain}", a.removeDomain},
		{"POST", "/domains/{domain}/verify", a.verifyDomain},
		{"PUT", "/idp", a.setIdP},
		{"PUT", "/admin-group", a.setAdminGroup},
		{"PUT", "/config-group", a.setConfigGroup},
		{"PUT", "/steps/{step}", a.setStep},
		{"POST", "/scim-token", a.rotateSCIMToken},
		{"POST", "/activate", a.activate},
		{"POST", "/deactivate", a.deactivate},
		{"GET", "/audit", a.audit},
		{"GET", "/users", a.listUsers},
		{"POST", "/local-users", a.inviteLocalUser},
		{"DELETE", "/local-users/{user}", a.removeLocalUser},
		{"POST", "/local-users/{user}/invite", a.reinviteLocalUser},
		{"POST", "/users/{user}/unlink", a.unlinkUser},
		{"GET", "/backup-login", a.showBackup},
		{"PUT", "/backup-login", a.setBackup},
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if orgOf(r) == "" {
			w.Header().Set("Cache-Control", "no-store")
			writeJSON(w, http.StatusForbidden, &Error{Message: "no organization for this session"})
			return
		}
		mux.ServeHTTP(w, r)
	})
}
