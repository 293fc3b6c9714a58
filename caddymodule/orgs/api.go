package orgs

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/zap"
)

// OperatorActor is the actor the admin API records in the audit trail. The
// admin endpoint has no user accounts: whoever reaches it is the operator.
const OperatorActor = "operator"

// maxRequestBody caps request bodies before they are decoded; the largest
// legitimate one is an IdP metadata document.
const maxRequestBody = 1 << 20

// AdminHandler returns the operator's JSON API over organizations, with
// routes under prefix (for example "/sso"):
//
//	GET    {prefix}/orgs                                list
//	POST   {prefix}/orgs                                {"id","name","owner_email"} → 201, with "owner_invite_url" (shown once)
//	GET    {prefix}/orgs/{org}                          show
//	PATCH  {prefix}/orgs/{org}                          {"name"?, "allow_idp_initiated"?}
//	DELETE {prefix}/orgs/{org}                          → 204
//	GET    {prefix}/orgs/{org}/domains                  list
//	POST   {prefix}/orgs/{org}/domains                  {"name"} → 201
//	DELETE {prefix}/orgs/{org}/domains/{domain}         → 204
//	POST   {prefix}/orgs/{org}/domains/{domain}/verify  {"force"?}
//	PUT    {prefix}/orgs/{org}/idp                      {"entity_id","sso_url","certificates"}, {"metadata_xml"} or {"metadata_url"}
//	PUT    {prefix}/orgs/{org}/admin-group              {"name","id"}
//	PUT    {prefix}/orgs/{org}/config-group             {"name","id"} (both empty: local admins only)
//	PUT    {prefix}/orgs/{org}/steps/{step}             {"done": true|false} (register, saml, scim, users)
//	POST   {prefix}/orgs/{org}/activate                 → 200, or 409 with "missing" (titles of the grey steps)
//	POST   {prefix}/orgs/{org}/deactivate
//	GET    {prefix}/orgs/{org}/audit?limit=N&before=CURSOR  newest first; Link: <…>; rel="next" when more
//	POST   {prefix}/orgs/{org}/scim-token               → 201 {"token","scim_base_url"} (new token, shown once)
//	GET    {prefix}/orgs/{org}/users?role=&status=       every user with role, status and source
//	POST   {prefix}/orgs/{org}/local-users              {"email","role"?,"display_name"?} → 201 set-password link (shown once)
//	DELETE {prefix}/orgs/{org}/local-users/{user}       → 204 (user ID or email; not the backup login)
//	POST   {prefix}/orgs/{org}/local-users/{user}/invite → 201 new link for an account without a password
//	POST   {prefix}/orgs/{org}/users/{user}/unlink      forget the user's stored IdP identifier, end their sessions (not SCIM users)
//	GET    {prefix}/orgs/{org}/backup-login             the backup login and the eligible accounts
//	PUT    {prefix}/orgs/{org}/backup-login             {"user"} (user ID or email) → 200
//	POST   {prefix}/orgs/{org}/backup-login/reset       → 201 new set-password link for the backup login
//
// Errors are JSON objects {"error": "...", "field": "..."} with a 4xx status
// (5xx for internal failures, whose details go to the log only). Request
// bodies are single JSON objects of at most 1 MiB; unknown fields are
// refused, so a misspelt option is an error rather than silently ignored.
//
// The handler does no access control: it is meant for Caddy's admin
// endpoint, which is the operator's alone.
func (s *Service) AdminHandler(prefix string) http.Handler {
	prefix = strings.TrimSuffix(prefix, "/")
	a := &adminAPI{
		s: s, prefix: prefix, operator: true,
		orgOf:   func(r *http.Request) string { return r.PathValue("org") },
		actorOf: func(*http.Request) string { return OperatorActor },
	}
	return a.mux([]route{
		{"GET", "/orgs", a.listOrgs},
		{"POST", "/orgs", a.createOrg},
		{"GET", "/orgs/{org}", a.showOrg},
		{"PATCH", "/orgs/{org}", a.updateOrg},
		{"DELETE", "/orgs/{org}", a.deleteOrg},
		{"GET", "/orgs/{org}/domains", a.listDomains},
		{"POST", "/orgs/{org}/domains", a.addDomain},
		{"DELETE", "/orgs/{org}/domains/{domain}", a.removeDomain},
		{"POST", "/orgs/{org}/domains/{domain}/verify", a.verifyDomain},
		{"PUT", "/orgs/{org}/idp", a.setIdP},
		{"PUT", "/orgs/{org}/admin-group", a.setAdminGroup},
		{"PUT", "/orgs/{org}/config-group", a.setConfigGroup},
		{"PUT", "/orgs/{org}/steps/{step}", a.setStep},
		{"POST", "/orgs/{org}/activate", a.activate},
		{"POST", "/orgs/{org}/deactivate", a.deactivate},
		{"GET", "/orgs/{org}/audit", a.audit},
		{"POST", "/orgs/{org}/scim-token", a.rotateSCIMToken},
		{"GET", "/orgs/{org}/users", a.listUsers},
		{"POST", "/orgs/{org}/local-users", a.inviteLocalUser},
		{"DELETE", "/orgs/{org}/local-users/{user}", a.removeLocalUser},
		{"POST", "/orgs/{org}/local-users/{user}/invite", a.reinviteLocalUser},
		{"POST", "/orgs/{org}/users/{user}/unlink", a.unlinkUser},
		{"GET", "/orgs/{org}/backup-login", a.showBackup},
		{"PUT", "/orgs/{org}/backup-login", a.setBackup},
		{"POST", "/orgs/{org}/backup-login/reset", a.resetBackup},
	})
}

// route is one endpoint of a JSON API: a method and a path under the
// API's prefix.
type route struct {
	method, path string
	fn           apiFunc
}

// mux serves routes under a.prefix, answering methods a path does not
// serve with a JSON 405 and unknown paths with a JSON 404.
func (a *adminAPI) mux(routes []route) http.Handler {
	prefix := a.prefix
	mux := http.NewServeMux()
	allowed := map[string][]string{}
	var paths []string
	for i, rt := range routes {
		if prefix+rt.path == "" {
			routes[i].path = "/{$}" // the root itself, when there is no prefix
			rt = routes[i]
		}
		mux.Handle(rt.method+" "+prefix+rt.path, a.serve(rt.fn))
		if _, ok := allowed[rt.path]; !ok {
			paths = append(paths, rt.path)
		}
		allowed[rt.path] = append(allowed[rt.path], rt.method)
	}
	// A method-less pattern is less specific than the ones above, so it
	// only sees the methods they do not serve: answer those in JSON rather
	// than with ServeMux's plain-text 405.
	for _, p := range paths {
		methods := allowed[p]
		if slices.Contains(methods, "GET") {
			methods = append(methods, "HEAD")
		}
		allow := strings.Join(methods, ", ")
		mux.Handle(prefix+p, a.serve(func(w http.ResponseWriter, r *http.Request) (int, any, error) {
			w.Header().Set("Allow", allow)
			return 0, nil, &Error{Status: http.StatusMethodNotAllowed, Message: fmt.Sprintf("method %s not allowed here (allowed: %s)", r.Method, allow)}
		}))
	}
	mux.Handle(prefix+"/", a.serve(func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		return 0, nil, notFound("no such endpoint: %s", r.URL.Path)
	}))
	return mux
}

// apiFunc serves one route: it returns the status and the value to send as
// JSON, or an error.
type apiFunc func(w http.ResponseWriter, r *http.Request) (int, any, error)

// adminAPI serves the JSON API over organizations, for the operator
// (AdminHandler: every organization, named in the path) or for one
// organization's admins (OrgHandler: the organization and the actor come
// from the caller's session).
type adminAPI struct {
	s        *Service
	prefix   string
	operator bool
	orgOf    func(*http.Request) string
	actorOf  func(*http.Request) string
}

// org is the organization a request is about.
func (a *adminAPI) org(r *http.Request) string { return a.orgOf(r) }

// actor is who the audit trail records for a request.
func (a *adminAPI) actor(r *http.Request) string { return a.actorOf(r) }

// orgURL is the path of the request's organization in this API.
func (a *adminAPI) orgURL(r *http.Request) string {
	if a.operator {
		return a.prefix + "/orgs/" + url.PathEscape(a.org(r))
	}
	return a.prefix
}

func (a *adminAPI) serve(fn apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		status, body, err := fn(w, r)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		if status == http.StatusNoContent {
			w.WriteHeader(status)
			return
		}
		writeJSON(w, status, body)
	})
}

func (a *adminAPI) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if e, ok := AsError(err); ok {
		writeJSON(w, e.Status, e)
		return
	}
	a.s.logger.Error("admin API request failed",
		zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
	writeJSON(w, http.StatusInternalServerError, &Error{Message: "internal error; see the server log"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// Answers carry tokens shown once and set-password links: never cached.
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the status is sent; a failed write has nobody to tell
}

// decodeJSON reads the request body as one JSON object into dst. With
// optional, an empty body leaves dst as it is.
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any, optional bool) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return &Error{Status: http.StatusUnsupportedMediaType, Message: "Content-Type must be application/json"}
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		if errors.Is(err, io.EOF) && optional {
			return nil
		}
		return bodyError(err)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return bodyError(err)
		}
		return invalid("", "request body must be a single JSON object")
	}
	return nil
}

// bodyError explains a decoding failure in terms of the request.
func bodyError(err error) error {
	var maxErr *http.MaxBytesError
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return invalid("", "request body (a JSON object) is required")
	case errors.As(err, &maxErr):
		return &Error{Status: http.StatusRequestEntityTooLarge, Message: fmt.Sprintf("request body too large (at most %d bytes)", maxRequestBody)}
	case errors.As(err, &syntaxErr):
		return invalid("", "malformed JSON at byte %d", syntaxErr.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("", "malformed JSON (unexpected end)")
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return invalid("", "request body must be a JSON object")
		}
		return invalid(typeErr.Field, "must be %s", jsonKind(typeErr.Type))
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name, _ = strconv.Unquote(name)
		return invalid(name, "unknown field")
	}
	return invalid("", "malformed JSON request body")
}

func jsonKind(t reflect.Type) string {
	if t == nil {
		return "of another type"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return "an array of " + strings.TrimPrefix(jsonKind(t.Elem()), "a ") + "s"
	case reflect.Int, reflect.Int64, reflect.Float64:
		return "a number"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "of another type"
}

// Request bodies.
type (
	createOrgRequest struct {
		ID         string `json:"id"`
		Name       string `json:"name"`
		OwnerEmail string `json:"owner_email"`
	}
	addDomainRequest struct {
		Name string `json:"name"`
	}
	verifyDomainRequest struct {
		Force bool `json:"force"`
	}
	adminGroupRequest struct {
		Name string `json:"name"`
		ID   string `json:"id"`
	}
	stepRequest struct {
		Done *bool `json:"done"`
	}
)

func (a *adminAPI) listOrgs(w http.ResponseWriter, r *http.Request) (int, any, error) {
	list, err := a.s.ListOrgs()
	return http.StatusOK, list, err
}

func (a *adminAPI) createOrg(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var req createOrgRequest
	if err := decodeJSON(w, r, &req, false); err != nil {
		return 0, nil, err
	}
	v, err := a.s.CreateOrg(a.actor(r), req.ID, req.Name, req.OwnerEmail)
	if err != nil {
		return 0, nil, err
	}
	w.Header().Set("Location", a.prefix+"/orgs/"+url.PathEscape(v.ID))
	return http.StatusCreated, v, nil
}

func (a *adminAPI) showOrg(w http.ResponseWriter, r *http.Request) (int, any, error) {
	v, err := a.s.GetOrg(a.org(r))
	return http.StatusOK, v, err
}

func (a *adminAPI) updateOrg(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var req OrgUpdate
	if err := decodeJSON(w, r, &req, false); err != nil {
		return 0, nil, err
	}
	v, err := a.s.UpdateOrg(a.actor(r), a.org(r), req)
	return http.StatusOK, v, err
}

func (a *adminAPI) deleteOrg(w http.ResponseWriter, r *http.Request) (int, any, error) {
	return http.StatusNoContent, nil, a.s.DeleteOrg(a.actor(r), a.org(r))
}

func (a *adminAPI) listDomains(w http.ResponseWriter, r *http.Request) (int, any, error) {
	list, err := a.s.ListDomains(a.org(r))
	return http.StatusOK, list, err
}

func (a *adminAPI) addDomain(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var req addDomainRequest
	if err := decodeJSON(w, r, &req, false); err != nil {
		return 0, nil, err
	}
	v, err := a.s.AddDomain(a.actor(r), a.org(r), req.Name)
	if err != nil {
		return 0, nil, err
	}
	w.Header().Set("Location", a.orgURL(r)+"/domains/"+url.PathEscape(v.Name))
	return http.StatusCreated, v, nil
}

func (a *adminAPI) removeDomain(w http.ResponseWriter, r *http.Request) (int, any, error) {
	return http.StatusNoContent, nil, a.s.RemoveDomain(a.actor(r), a.org(r), r.PathValue("domain"))
}

func (a *adminAPI) verifyDomain(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var req verifyDomainRequest
	if a.operator {
		if err := decodeJSON(w, r, &req, true); err != nil {
			return 0, nil, err
		}
	} else if err := decodeJSON(w, r, &struct{}{}, true); err != nil {
		// Vouching for a domain is the operator's privilege: an org
		// admin's "force" is an unknown field.
		return 0, nil, err
	}
	v, err := a.s.VerifyDomain(r.Context(), a.actor(r), a.org(r), r.PathValue("domain"), req.Force)
	return http.StatusOK, v, err
}

func (a *adminAPI) setIdP(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var req IdPInput
	if err := decodeJSON(w, r, &req, false); err != nil {
		return 0, nil, err
	}
	v, err := a.s.SetIdPContext(r.Context(), a.actor(r), a.org(r), req)
	return http.StatusOK, v, err
}

func (a *adminAPI) setAdminGroup(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var req adminGroupRequest
	if err := decodeJSON(w, r, &req, false); err != nil {
		return 0, nil, err
	}
	v, err := a.s.SetAdminGroup(a.actor(r), a.org(r), req.Name, req.ID)
	return http.StatusOK, v, err
}

func (a *adminAPI) setConfigGroup(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var req adminGroupRequest
	if err := decodeJSON(w, r, &req, false); err != nil {
		return 0, nil, err
	}
	v, err := a.s.SetConfigGroup(a.actor(r), a.org(r), req.Name, req.ID)
	return http.StatusOK, v, err
}

func (a *adminAPI) setStep(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var req stepRequest
	if err := decodeJSON(w, r, &req, false); err != nil {
		return 0, nil, err
	}
	if req.Done == nil {
		return 0, nil, invalid("done", "is required (true or false)")
	}
	v, err := a.s.SetStepDone(a.actor(r), a.org(r), r.PathValue("step"), *req.Done)
	return http.StatusOK, v, err
}

func (a *adminAPI) activate(w http.ResponseWriter, r *http.Request) (int, any, error) {
	if err := decodeJSON(w, r, &struct{}{}, true); err != nil {
		return 0, nil, err
	}
	v, err := a.s.Activate(a.actor(r), a.org(r))
	return http.StatusOK, v, err
}

func (a *adminAPI) deactivate(w http.ResponseWriter, r *http.Request) (int, any, error) {
	if err := decodeJSON(w, r, &struct{}{}, true); err != nil {
		return 0, nil, err
	}
	v, err := a.s.Deactivate(a.actor(r), a.org(r))
	return http.StatusOK, v, err
}

// audit serves a page of the audit trail. The body stays a plain array
// (what clients of the unpaged API read); the next page, if any, is in a
// Link header (RFC 8288, as GitHub's API pages):
// `Link: <…/audit?before=CURSOR&limit=N>; rel="next"`.
func (a *adminAPI) audit(w http.ResponseWriter, r *http.Request) (int, any, error) {
	q := r.URL.Query()
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return 0, nil, invalid("limit", "must be a positive number")
		}
		limit = n
	}
	events, next, err := a.s.Audit(a.org(r), q.Get("before"), limit)
	if err != nil {
		return 0, nil, err
	}
	if next != "" {
		q.Set("before", next) // the other parameters (limit, the configurator's org) carry over
		w.Header().Set("Link", "<"+r.URL.EscapedPath()+"?"+q.Encode()+`>; rel="next"`)
	}
	return http.StatusOK, events, nil
}

func (a *adminAPI) rotateSCIMToken(w http.ResponseWriter, r *http.Request) (int, any, error) {
	if err := decodeJSON(w, r, &struct{}{}, true); err != nil {
		return 0, nil, err
	}
	tok, err := a.s.RotateSCIMToken(a.actor(r), a.org(r))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, tok, nil
}
