package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/caddyserver/caddy/v2"

	"github.com/ssogate/ssogate/caddymodule/orgs"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// adminAPIPrefix is where the operator's organization API lives on Caddy's
// admin endpoint.
const adminAPIPrefix = "/sso"

// AdminAPI is the `admin.api.sso` module: the operator's JSON API over
// organizations on Caddy's admin endpoint (routes under /sso/; see
// orgs.Service.AdminHandler). It takes no configuration.
//
// Admin routers are provisioned before apps, and on every config load, so
// the `sso` app is looked up on each request; without one the API answers
// 503. The admin endpoint belongs to the operator alone (whoever reaches it
// can also load a config or stop the server): nothing tenant-facing is
// served here.
type AdminAPI struct {
	// handler is built once per orgs.Service; shared survives module copies.
	shared *adminAPIState
}

type adminAPIState struct {
	mu      sync.Mutex
	svc     *orgs.Service
	handler http.Handler
}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.sso",
		New: func() caddy.Module { return &AdminAPI{shared: new(adminAPIState)} },
	}
}

// Routes returns the admin routes of the organization API.
func (a *AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{
		Pattern: adminAPIPrefix + "/",
		Handler: caddy.AdminHandlerFunc(a.serve),
	}}
}

func (a *AdminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	h, err := a.orgsHandler()
	if err != nil {
		return err
	}
	h.ServeHTTP(w, r)
	return nil
}

// orgsHandler finds the running config's `sso` app and returns the API
// handler over its organization service.
func (a *AdminAPI) orgsHandler() (http.Handler, error) {
	appVal, err := caddy.ActiveContext().AppIfConfigured("sso")
	if err != nil {
		if errors.Is(err, caddy.ErrNotConfigured) {
			return nil, caddy.APIError{
				HTTPStatus: http.StatusServiceUnavailable,
				Err:        errors.New("the sso app is not in the running config (if Caddy is still loading its config, try again in a moment)"),
			}
		}
		return nil, caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: fmt.Errorf("sso app: %w", err)}
	}
	app, ok := appVal.(*App)
	if !ok {
		return nil, caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: fmt.Errorf("sso app has unexpected type %T", appVal)}
	}
	svc, err := app.Orgs()
	if err != nil {
		return nil, caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: err}
	}
	st := a.shared
	if st == nil { // a zero value not made by New; serve without caching
		return svc.AdminHandler(adminAPIPrefix), nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	// A reload brings a new app and service (on the same shared store);
	// rebuild the routes for it.
	if st.svc != svc {
		st.svc, st.handler = svc, svc.AdminHandler(adminAPIPrefix)
	}
	return st.handler, nil
}

// Interface guards
var (
	_ caddy.AdminRouter = (*AdminAPI)(nil)
)
