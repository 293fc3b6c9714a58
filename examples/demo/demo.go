// Package demo runs a complete ssogate installation in one process: the
// gateway (Caddy with the sso app and sso_gateway handler in front of a
// reverse proxy), a demo SAML IdP and a demo upstream that shows the
// identity headers it receives, with one active organization set up
// through the operator admin API. `ssogate demo` runs it for people; the
// end-to-end tests run it for the test suite.
package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/ssogate/ssogate/examples/demoidp"
	"github.com/ssogate/ssogate/examples/upstream"
)

// Demo defaults, printed by `ssogate demo` and listed in the README.
const (
	DefaultGateway  = "127.0.0.1:8080"
	DefaultIdP      = "127.0.0.1:8081"
	DefaultUpstream = "127.0.0.1:8082"
	// DefaultAdmin is empty: the demo picks a free loopback port for
	// Caddy's admin API, so that it does not clash with a Caddy already
	// running on the usual localhost:2019.
	DefaultAdmin    = ""
	DefaultPassword = "demo-password"

	OrgID          = "example"
	Domain         = "example.com"
	AdminGroupName = "ssogate-admins"
	AdminGroupID   = "00g1demoadmins"
	// ConfigGroupName is the IdP group whose members may change the
	// demo org's SSO (Alice; Bob only signs in).
	ConfigGroupName = "ssogate-config"
	ConfigGroupID   = "00g1democonfig"
	AliceEmail      = "alice@example.com"
	BobEmail        = "bob@example.com"
)

// AliceGroups are the groups the demo IdP asserts for Alice.
func AliceGroups() []string { return []string{AdminGroupName, ConfigGroupName, "staff"} }

// Config says where each part listens.
type Config struct {
	Gateway, IdP, Upstream, Admin string // listen addresses (host:port)
	DataDir                       string // the store lives in DataDir/db
	Password                      string // of the demo users
	// LogLevel of Caddy's default logger (e.g. "INFO", "WARN").
	LogLevel string
	// LogFile, when set, receives the logs instead of stderr.
	LogFile string
	// ExtraGatewayConfig, when set, replaces the sso_gateway handler JSON
	// (tests use it to try header presets).
	GatewayHandler map[string]any
	// Storage, when set, is the sso app's storage module JSON (e.g.
	// {"module": "postgres", "dsn": "{env.SSOGATE_DATABASE_URL}"})
	// instead of Badger in DataDir/db.
	Storage map[string]any
}

// Env is a running demo.
type Env struct {
	GatewayURL, IdPURL, UpstreamURL, AdminURL string
	IdP                                       *demoidp.IdP

	cfg     Config
	servers []*http.Server
}

// Start brings everything up and returns once the organization is ready.
func Start(ctx context.Context, cfg Config) (*Env, error) {
	if cfg.Gateway == "" {
		cfg.Gateway = DefaultGateway
	}
	if cfg.IdP == "" {
		cfg.IdP = DefaultIdP
	}
	if cfg.Upstream == "" {
		cfg.Upstream = DefaultUpstream
	}
	if cfg.Admin == "" {
		addr, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		cfg.Admin = addr
	}
	if cfg.Password == "" {
		cfg.Password = DefaultPassword
	}
	if cfg.LogLevel == "" {
		cfg.LogLevel = "INFO"
	}
	if cfg.DataDir == "" {
		return nil, errors.New("demo: DataDir is required")
	}
	e := &Env{
		cfg:         cfg,
		GatewayURL:  "http://" + cfg.Gateway,
		IdPURL:      "http://" + cfg.IdP,
		UpstreamURL: "http://" + cfg.Upstream,
		AdminURL:    "http://" + cfg.Admin,
	}

	idp, err := demoidp.New(demoidp.Config{
		BaseURL: e.IdPURL,
		Users: []demoidp.User{
			{Email: AliceEmail, Password: cfg.Password, DisplayName: "Alice Admin", GivenName: "Alice", FamilyName: "Admin", Groups: AliceGroups()},
			{Email: BobEmail, Password: cfg.Password, DisplayName: "Bob Builder", GivenName: "Bob", FamilyName: "Builder", Groups: []string{"staff"}},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("demo: IdP: %w", err)
	}
	e.IdP = idp
	if err := e.serve(cfg.IdP, idp.Handler()); err != nil {
		return nil, err
	}
	// The demo app checks the gateway's signed identity as an
	// application should.
	verifier := &upstream.Verifier{
		JWKSURL:  e.GatewayURL + "/sso/.well-known/jwks.json",
		Issuer:   e.GatewayURL,
		Audience: e.GatewayURL,
	}
	if err := e.serve(cfg.Upstream, upstream.VerifyingHandler(nil, verifier)); err != nil {
		e.Stop()
		return nil, err
	}
	if err := caddy.Load(e.caddyConfig(), true); err != nil {
		e.Stop()
		return nil, fmt.Errorf("demo: starting gateway: %w", err)
	}
	if err := e.setUpOrg(ctx); err != nil {
		e.Stop()
		return nil, err
	}
	return e, nil
}

func (e *Env) serve(addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("demo: listening on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	e.servers = append(e.servers, srv)
	go func() { _ = srv.Serve(ln) }()
	return nil
}

// Stop shuts everything down and releases the store.
func (e *Env) Stop() {
	_ = caddy.Stop()
	for _, s := range e.servers {
		_ = s.Close()
	}
}

// DefaultGatewayHandler is the demo's sso_gateway handler: default headers
// and the signed identity token, which the demo app verifies.
func DefaultGatewayHandler() map[string]any {
	return map[string]any{"handler": "sso_gateway", "signed_identity": map[string]any{}}
}

// CaddyConfig is the gateway's JSON config, for reloads in tests.
func (e *Env) CaddyConfig() []byte { return e.caddyConfig() }

func (e *Env) caddyConfig() []byte {
	gw := e.cfg.GatewayHandler
	if gw == nil {
		gw = DefaultGatewayHandler()
	}
	sso := map[string]any{"base_url": e.GatewayURL}
	if e.cfg.Storage != nil {
		sso["storage"] = e.cfg.Storage
	} else {
		sso["storage_path"] = filepath.Join(e.cfg.DataDir, "db")
	}
	cfg := map[string]any{
		"admin": map[string]any{
			"listen": e.cfg.Admin,
			"config": map[string]any{"persist": false},
		},
		"logging": map[string]any{"logs": map[string]any{"default": e.logConfig()}},
		// Caddy's own storage (locks, certificates) in the data directory,
		// not in the user's ~/.local/share/caddy.
		"storage": map[string]any{"module": "file_system", "root": filepath.Join(e.cfg.DataDir, "caddy")},
		"apps": map[string]any{
			"sso": sso,
			"http": map[string]any{
				"grace_period": "1s",
				"servers": map[string]any{
					"gateway": map[string]any{
						"listen":          []string{e.cfg.Gateway},
						"automatic_https": map[string]any{"disable": true},
						"routes": []any{map[string]any{"handle": []any{
							gw,
							map[string]any{"handler": "reverse_proxy", "upstreams": []any{map[string]any{"dial": e.cfg.Upstream}}},
						}}},
					},
				},
			},
		},
	}
	out, _ := json.Marshal(cfg)
	return out
}

func (e *Env) logConfig() map[string]any {
	l := map[string]any{"level": e.cfg.LogLevel}
	if e.cfg.LogFile != "" {
		l["writer"] = map[string]any{"output": "file", "filename": e.cfg.LogFile, "roll": false}
	}
	return l
}

// FreeAddr returns a loopback address with a port free right now.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("demo: finding a free port: %w", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		return "", fmt.Errorf("demo: finding a free port: %w", err)
	}
	return addr, nil
}

// setUpOrg configures the demo organization the way an operator and the
// org's owner would: the operator creates it through the admin API, the
// owner (Alice) chooses her password through the set-password link and
// signs in once, which makes her account eligible as the backup login,
// and every configurator step is completed before activation. Then the
// IdP is told about the gateway's SP.
func (e *Env) setUpOrg(ctx context.Context) error {
	base := e.AdminURL + "/sso/orgs"
	if _, err := e.Admin(ctx, http.MethodGet, base+"/"+OrgID, nil); err == nil {
		// Kept from an earlier run with the same data directory.
	} else {
		out, err := e.Admin(ctx, http.MethodPost, base, map[string]any{"id": OrgID, "name": "Example Inc.", "owner_email": AliceEmail})
		if err != nil {
			return err
		}
		var created struct {
			OwnerInviteURL string `json:"owner_invite_url"`
		}
		if err := json.Unmarshal(out, &created); err != nil || created.OwnerInviteURL == "" {
			return fmt.Errorf("demo: creating the organization: no owner link in %s", out)
		}
		steps := []struct {
			method, path string
			body         any
		}{
			{http.MethodPost, base + "/" + OrgID + "/domains", map[string]any{"name": Domain}},
			{http.MethodPost, base + "/" + OrgID + "/domains/" + Domain + "/verify", map[string]any{"force": true}},
			{http.MethodPut, base + "/" + OrgID + "/admin-group", map[string]any{"name": AdminGroupName, "id": AdminGroupID}},
			{http.MethodPut, base + "/" + OrgID + "/config-group", map[string]any{"name": ConfigGroupName, "id": ConfigGroupID}},
			{http.MethodPost, base + "/" + OrgID + "/scim-token", nil},
			{http.MethodPut, base + "/" + OrgID + "/steps/register", map[string]any{"done": true}},
			{http.MethodPut, base + "/" + OrgID + "/steps/saml", map[string]any{"done": true}},
			{http.MethodPut, base + "/" + OrgID + "/steps/scim", map[string]any{"done": true}},
			{http.MethodPut, base + "/" + OrgID + "/steps/users", map[string]any{"done": true}},
		}
		for _, s := range steps {
			if _, err := e.Admin(ctx, s.method, s.path, s.body); err != nil {
				return err
			}
		}
		if err := e.ownerSignsInOnce(ctx, created.OwnerInviteURL); err != nil {
			return err
		}
	}
	// The IdP's key is new on every start, so its settings are refreshed.
	if _, err := e.Admin(ctx, http.MethodPut, base+"/"+OrgID+"/idp", map[string]any{
		"entity_id": e.IdP.EntityID(), "sso_url": e.IdP.SSOURL(), "certificates": []string{e.IdP.CertificatePEM()},
	}); err != nil {
		return err
	}
	if _, err := e.Admin(ctx, http.MethodPost, base+"/"+OrgID+"/activate", nil); err != nil {
		return err
	}
	md, err := e.get(ctx, e.GatewayURL+"/sso/saml/"+OrgID+"/metadata")
	if err != nil {
		return fmt.Errorf("demo: fetching SP metadata: %w", err)
	}
	if err := e.IdP.RegisterServiceProvider(OrgID, md); err != nil {
		return fmt.Errorf("demo: registering SP with IdP: %w", err)
	}
	return nil
}

// SetUpOrg configures the demo organization, as Start does, through the
// operator admin API at adminURL for a gateway that browsers reach at
// gatewayURL, with idp as its IdP, and returns a new SCIM bearer token for
// it. Tests that run the gateway as separate processes (several replicas
// on one store, behind one base URL) use it; adminURL may be any replica's.
func SetUpOrg(ctx context.Context, adminURL, gatewayURL string, idp *demoidp.IdP, password string) (scimToken string, err error) {
	if password == "" {
		password = DefaultPassword
	}
	e := &Env{AdminURL: adminURL, GatewayURL: gatewayURL, IdP: idp, cfg: Config{Password: password}}
	if err := e.setUpOrg(ctx); err != nil {
		return "", err
	}
	// setUpOrg's token is not kept; a new one replaces it.
	out, err := e.Admin(ctx, http.MethodPost, adminURL+"/sso/orgs/"+OrgID+"/scim-token", nil)
	if err != nil {
		return "", err
	}
	var tok struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(out, &tok); err != nil || tok.Token == "" {
		return "", fmt.Errorf("demo: no SCIM token in the admin API's answer")
	}
	return tok.Token, nil
}

// Admin calls the operator admin API and returns the response body; a
// non-2xx status is an error carrying the body.
func (e *Env) Admin(ctx context.Context, method, url string, body any) ([]byte, error) {
	var raw []byte
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		raw = b
	}
	// Caddy restarts its admin server on every config load, and the old
	// one, shutting down, drops requests it reads without answering them.
	// Such a request was never served, so sending it again on a fresh
	// connection is safe, even for a POST.
	var resp *http.Response
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(raw))
		if err != nil {
			return nil, err
		}
		req.Close = true
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err = http.DefaultClient.Do(req)
		if err == nil {
			break
		}
		if attempt == 3 || !(errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
			return nil, fmt.Errorf("demo: admin API %s %s: %w", method, url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode/100 != 2 {
		return out, fmt.Errorf("demo: admin API %s %s: %s: %s", method, url, resp.Status, bytes.TrimSpace(out))
	}
	return out, nil
}

// ownerSignsInOnce does what Alice would in a browser: choose her password
// through the owner's set-password link, then sign in with it at the
// backup login page.
func (e *Env) ownerSignsInOnce(ctx context.Context, link string) error {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return err
	}
	c := &http.Client{
		Jar:           jar,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if err := submitForm(ctx, c, link, link, url.Values{"password": {e.cfg.Password}, "confirm": {e.cfg.Password}}, http.StatusOK); err != nil {
		return fmt.Errorf("demo: setting the owner's password: %w", err)
	}
	backup := e.GatewayURL + "/sso/backup"
	if err := submitForm(ctx, c, backup, backup, url.Values{"email": {AliceEmail}, "password": {e.cfg.Password}}, http.StatusSeeOther); err != nil {
		return fmt.Errorf("demo: the owner's first sign-in: %w", err)
	}
	return nil
}

// hiddenInput matches the hidden fields (CSRF token and the like) of the
// gateway's own forms.
var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)"`)

// submitForm loads a form page, then posts its hidden fields with fields
// to action and requires the status want.
func submitForm(ctx context.Context, c *http.Client, page, action string, fields url.Values, want int) error {
	body, err := fetch(ctx, c, http.MethodGet, page, nil, http.StatusOK)
	if err != nil {
		return err
	}
	form := url.Values{}
	for _, m := range hiddenInput.FindAllStringSubmatch(string(body), -1) {
		form.Set(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	for k, v := range fields {
		form[k] = v
	}
	_, err = fetch(ctx, c, http.MethodPost, action, strings.NewReader(form.Encode()), want)
	return err
}

func fetch(ctx context.Context, c *http.Client, method, u string, body io.Reader, want int) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: %s", method, u, resp.Status)
	}
	return out, nil
}

func (e *Env) get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return b, nil
}

// TempDataDir makes a fresh data directory for a demo run.
func TempDataDir() (string, error) {
	return os.MkdirTemp("", "ssogate-demo-")
}
