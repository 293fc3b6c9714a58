package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/ssogate/ssogate/caddymodule/orgs"
	"github.com/ssogate/ssogate/store"
)

func init() {
	caddy.RegisterModule(StoreAPI{})
}

// StoreAPI is the `admin.api.sso_store` module: the running gateway's
// store, copied out while it serves, on Caddy's admin endpoint.
//
//	GET /sso/store/backup                     online backup of the Badger store
//	GET /sso/store/export[?org=ID...][&with_secrets=true]   portable export
//
// Both stream from one consistent snapshot while requests go on. The
// admin endpoint belongs to the operator alone, which is what makes it
// the place for copies that may hold every secret of the gateway.
// `ssogate store backup` and `ssogate store export --online` call them.
//
// A copy that fails midway cannot change its status any more; it ends
// without its end mark (the backup's end frame, the export's end line),
// which is how the CLI, restore and import tell it from a whole one.
type StoreAPI struct {
	log *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (StoreAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.sso_store",
		New: func() caddy.Module { return new(StoreAPI) },
	}
}

// Provision sets up the module.
func (a *StoreAPI) Provision(ctx caddy.Context) error {
	a.log = ctx.Logger()
	return nil
}

// Routes returns the store's admin routes.
func (a *StoreAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: adminAPIPrefix + "/store/backup", Handler: caddy.AdminHandlerFunc(a.backup)},
		{Pattern: adminAPIPrefix + "/store/export", Handler: caddy.AdminHandlerFunc(a.export)},
	}
}

func (a *StoreAPI) logger() *zap.Logger {
	if a.log == nil {
		return caddy.Log().Named("admin.api.sso_store")
	}
	return a.log
}

// runningStore is the store of the running config's sso app.
func runningStore() (*store.Store, error) {
	appVal, err := caddy.ActiveContext().AppIfConfigured("sso")
	if err != nil {
		return nil, caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: errors.New("the sso app is not in the running config")}
	}
	app, ok := appVal.(*App)
	if !ok {
		return nil, caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: fmt.Errorf("sso app has unexpected type %T", appVal)}
	}
	st, err := app.Store()
	if err != nil {
		return nil, caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: err}
	}
	return st, nil
}

func (a *StoreAPI) backup(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("GET only")}
	}
	st, err := runningStore()
	if err != nil {
		return err
	}
	if st.Backend().Name() != "badger" {
		return caddy.APIError{HTTPStatus: http.StatusNotImplemented,
			Err: fmt.Errorf("an online backup is of the Badger store; this gateway stores in %s (back it up with its own tools, or use `store export`)", st.Backend().Name())}
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="ssogate.backup"`)
	w.Header().Set("Cache-Control", "no-store")
	log := a.logger()
	log.Info("store backup started", zap.String("remote", r.RemoteAddr))
	cw := &countingWriter{w: w}
	err = st.Backup(cw)
	details := map[string]string{"bytes": strconv.FormatInt(cw.n, 10)}
	if err != nil {
		// Too late for a status: the stream ends without its end frame.
		log.Error("store backup failed", zap.Int64("bytes", cw.n), zap.Error(err))
		a.audit(st, "store.backup", "failure", details)
		return nil
	}
	log.Info("store backup done", zap.Int64("bytes", cw.n))
	a.audit(st, "store.backup", "success", details)
	return nil
}

func (a *StoreAPI) export(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("GET only")}
	}
	q := r.URL.Query()
	for k := range q {
		if k != "org" && k != "with_secrets" {
			return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("unknown parameter %q (org, with_secrets)", k)}
		}
	}
	opts := store.ExportOptions{Orgs: q["org"]}
	if v := q.Get("with_secrets"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("with_secrets: %q is not a boolean", v)}
		}
		opts.WithSecrets = b
	}
	st, err := runningStore()
	if err != nil {
		return err
	}
	// Check the organizations before the first byte goes out, so that a
	// typo gets a status rather than a cut stream.
	for _, id := range opts.Orgs {
		if _, err := st.GetOrg(id); err != nil {
			status := http.StatusInternalServerError
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
				status = http.StatusNotFound
			}
			return caddy.APIError{HTTPStatus: status, Err: fmt.Errorf("organization %q: %w", id, err)}
		}
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	log := a.logger()
	cw := &countingWriter{w: w}
	stats, err := st.Export(cw, opts)
	details := map[string]string{
		"orgs": strings.Join(opts.Orgs, ","), "with_secrets": strconv.FormatBool(opts.WithSecrets),
		"bytes": strconv.FormatInt(cw.n, 10),
	}
	if details["orgs"] == "" {
		details["orgs"] = "all"
	}
	if err != nil {
		log.Error("store export failed", zap.Strings("orgs", opts.Orgs), zap.Int64("bytes", cw.n), zap.Error(err))
		a.audit(st, "store.export", "failure", details)
		return nil
	}
	log.Info("store export done", zap.Strings("orgs", opts.Orgs), zap.Bool("with_secrets", opts.WithSecrets),
		zap.Int("users", stats["user"]), zap.Int64("bytes", cw.n))
	a.audit(st, "store.export", "success", details)
	return nil
}

// audit records a copy in the gateway-wide audit trail: who holds a copy
// of the store (with its secrets, perhaps) is the operator's to know.
func (a *StoreAPI) audit(st *store.Store, action, outcome string, details map[string]string) {
	e := &store.AuditEvent{Actor: orgs.OperatorActor, Action: action, Outcome: outcome, Details: details}
	if err := st.AppendAudit(e); err != nil {
		a.logger().Error("recording audit event", zap.String("action", action), zap.Error(err))
	}
}

type countingWriter struct {
	w http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Interface guards
var (
	_ caddy.AdminRouter = (*StoreAPI)(nil)
	_ caddy.Provisioner = (*StoreAPI)(nil)
)
