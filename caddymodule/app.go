// Package caddymodule plugs ssogate into Caddy: the `sso` app that owns the
// store, the `sso_gateway` HTTP handler that guards an upstream application,
// their Caddyfile syntax, and the operator's admin API under /sso/.
package caddymodule

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"

	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/ssogate/ssogate/caddymodule/orgs"
	"github.com/ssogate/ssogate/caddymodule/session"
	"github.com/ssogate/ssogate/store"
)

func init() {
	caddy.RegisterModule(App{})
}

// stores shares one open store per storage path across config reloads.
// Caddy provisions and starts a new config before it cleans up the old one,
// and Badger holds an exclusive directory lock, so a second Open would fail;
// the usage pool is Caddy's reference-counted answer to exactly this.
var stores = caddy.NewUsagePool()

// Defaults for the app's lifetimes.
const (
	DefaultSessionLifetime = 8 * time.Hour
	DefaultSessionIdle     = time.Hour
	DefaultAuthnRequestTTL = 10 * time.Minute
	DefaultPrefix          = "/sso"
	DefaultDomainRecheck   = 24 * time.Hour
	DefaultHSTSMaxAge      = 365 * 24 * time.Hour
	DefaultReauthWindow    = 5 * time.Minute
)

// App is the `sso` Caddy app. It owns the single store handle of the
// process and the gateway-wide settings every sso_gateway handler shares.
type App struct {
	// Directory of the embedded database. Default: `ssogate` under Caddy's
	// data directory.
	// Same as storage {"module": "badger", "path": ...}; kept because
	// it is shorter. Not together with storage.
	StoragePath string `json:"storage_path,omitempty"`

	// Where the data is kept: a module of the sso.storage namespace,
	// `badger` (embedded, one process; the default) or `postgres` (shared
	// by several gateway processes).
	StorageRaw json.RawMessage `json:"storage,omitempty" caddy:"namespace=sso.storage inline_key=module"`
	storage    Storage

	// The external URL of the gateway (scheme, host and optional port, no
	// path), e.g. `https://app.example.com`. SAML entity IDs, ACS URLs and
	// SCIM base URLs are built from it, so it must be what browsers and
	// IdPs use. Required.
	BaseURL string `json:"base_url,omitempty"`

	// Keys that protect session cookies. Each is a secret of at least 32
	// bytes (any string; a random base64 string is a good choice), usually
	// given as `{env.NAME}` or `{file./path}`. The first key seals new
	// cookies; the others are still accepted, so keys can be rotated
	// without signing everyone out. A key that is empty or still a
	// placeholder once expanded, or obviously weak (short, few distinct
	// characters, a repeat or run, a sample value from the docs), stops
	// the config from loading. When empty, a random key is generated once
	// and kept in the store.
	//
	// Every string option of the app and of sso_gateway may hold {env.*}
	// and {file.*} placeholders; they are expanded when the config loads.
	SessionKeys []string `json:"session_keys,omitempty"`

	// DNS resolver (host:port) for domain verification. Default: the
	// system's.
	DNSResolver string `json:"dns_resolver,omitempty"`

	// Let IdP metadata URLs point at loopback, private and link-local
	// addresses (an IdP that publishes its metadata only inside your
	// network). Off by default, so that org admins cannot make the gateway
	// fetch from its own network; on by itself for a loopback base_url.
	AllowPrivateMetadataURLs bool `json:"allow_private_metadata_urls,omitempty"`

	// How often each DNS-verified domain's TXT record is checked again. A
	// domain whose record is gone becomes unverified and stops routing
	// sign-ins (audited as domain.lost); DNS errors change nothing.
	// At least 1m. Default: 24h.
	DomainRecheckInterval caddy.Duration `json:"domain_recheck_interval,omitempty"`

	// Absolute lifetime of a session. Default: 8h.
	SessionLifetime caddy.Duration `json:"session_lifetime,omitempty"`

	// A session unused for this long ends; at most session_lifetime.
	// Default: 1h, or session_lifetime if that is shorter.
	SessionIdleTimeout caddy.Duration `json:"session_idle_timeout,omitempty"`

	// How recent the admin's last sign-in (SSO or password) must be for a
	// sensitive change in the configurator or its API: IdP settings and
	// certificates, admin group, SCIM token, local users, backup login,
	// activation. An older session is sent through sign-in again (SSO
	// sign-ins ask the IdP to authenticate anew, ForceAuthn), so a script
	// running in the application's origin cannot make these changes with
	// the admin's session alone. At least 1s, at most session_lifetime.
	// Default: 5m.
	ReauthWindow caddy.Duration `json:"reauth_window,omitempty"`

	// max-age of the Strict-Transport-Security header on the gateway's own
	// pages (sign-in, configurator, redirects to sign-in) when base_url is
	// https. Browsers then refuse plain http to the host. Never sent over
	// http. Default: 1 year (365d).
	HSTSMaxAge caddy.Duration `json:"hsts_max_age,omitempty"`

	// Turns the Strict-Transport-Security header off (when a front proxy
	// sets its own, for example). Default: false.
	DisableHSTS bool `json:"disable_hsts,omitempty"`

	// How long a sign-in may take at the IdP before the AuthnRequest it
	// answers is forgotten. Default: 10m.
	AuthnRequestTTL caddy.Duration `json:"authn_request_ttl,omitempty"`

	// Cost of the argon2id hashes of local accounts' passwords. Default:
	// 3 passes over 64 MiB with 4 lanes (RFC 9106's second recommended
	// option). Hashes made with earlier settings keep working and are
	// upgraded at the account's next sign-in.
	PasswordHashing *PasswordHashing `json:"password_hashing,omitempty"`

	// How long a set-password link (owner, invitation, reset) works.
	// Default: 72h.
	InviteTTL caddy.Duration `json:"invite_ttl,omitempty"`

	// Bounds of the audit trail: how long and how many events are kept,
	// and how repeated failures are aggregated. Default: 90 days, 100,000
	// events per organization, one event per kind of failure and minute.
	Audit *AuditConfig `json:"audit,omitempty"`

	// Caps on what each organization's SCIM client can make the gateway
	// parse, store and send (sizes, depths, counts, concurrency); see
	// scim.Limits for each field and its default.
	SCIMLimits *SCIMLimits `json:"scim_limits,omitempty"`

	ctx     caddy.Context // kept for Start's look at the http app
	logger  *zap.Logger
	baseURL *url.URL

	// shared survives the by-value copies Caddy makes of modules.
	shared *appState

	metrics *metrics // in Caddy's registry; nil if the context has none
}

// appState is the part of the app that is created lazily and must be the
// same for every copy of the module value.
type appState struct {
	openOnce sync.Once
	opened   bool
	store    *store.Store
	proc     *processState // shared with the store across reloads
	openErr  error

	orgsOnce sync.Once
	orgs     *orgs.Service

	localOnce sync.Once
	local     *localState
	localErr  error

	mu     sync.Mutex
	prefix string // route prefix of the first gateway that registered

	// The periodic domain re-check of this config, stopped by Stop.
	stopRecheck context.CancelFunc
	recheckDone chan struct{}
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "sso",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision expands placeholders and resolves defaults; Validate checks
// the result. It does not open the store: `caddy validate` provisions
// modules in a second process while the server runs, and must not fight
// it for the database lock.
func (a *App) Provision(ctx caddy.Context) error {
	a.ctx = ctx
	a.logger = ctx.Logger()
	a.shared = &appState{}
	if reg := ctx.GetMetricsRegistry(); reg != nil {
		m, err := newMetrics(reg, a.countSessions, a.changesLive)
		if err != nil {
			return fmt.Errorf("sso: registering metrics: %w", err)
		}
		a.metrics = m
	}

	x := newExpander()
	x.expand("base_url", &a.BaseURL, false)
	x.expand("dns_resolver", &a.DNSResolver, false)
	for i := range a.SessionKeys {
		x.expand(fmt.Sprintf("session_keys[%d]", i), &a.SessionKeys[i], true)
	}
	if x.err != nil {
		return fmt.Errorf("sso: %w", x.err)
	}

	if err := a.provisionStorage(ctx); err != nil {
		return err
	}
	// Validate reports a bad base_url; handlers provisioned later need it
	// parsed.
	a.baseURL, _ = parseBaseURL(a.BaseURL)

	// Zero means the default. A negative value is left for Validate to
	// refuse: it is a slip, not a wish for the default.
	idleUnset := a.SessionIdleTimeout == 0
	reauthUnset := a.ReauthWindow == 0
	for _, d := range []struct {
		v   *caddy.Duration
		def time.Duration
	}{
		{&a.SessionLifetime, DefaultSessionLifetime},
		{&a.SessionIdleTimeout, DefaultSessionIdle},
		{&a.AuthnRequestTTL, DefaultAuthnRequestTTL},
		{&a.DomainRecheckInterval, DefaultDomainRecheck},
		{&a.InviteTTL, orgs.DefaultInviteTTL},
		{&a.ReauthWindow, DefaultReauthWindow},
		{&a.HSTSMaxAge, DefaultHSTSMaxAge},
	} {
		if *d.v == 0 {
			*d.v = caddy.Duration(d.def)
		}
	}
	// A short session_lifetime alone must not meet the longer default
	// idle timeout as an error.
	if idleUnset && a.SessionLifetime > 0 {
		a.SessionIdleTimeout = min(a.SessionIdleTimeout, a.SessionLifetime)
	}
	if reauthUnset && a.SessionLifetime > 0 {
		a.ReauthWindow = min(a.ReauthWindow, a.SessionLifetime)
	}
	if a.PasswordHashing == nil {
		a.PasswordHashing = new(PasswordHashing)
	}
	return nil
}

// Validate checks every option, naming it and its value in the error
// (never a session key).
func (a *App) Validate() error {
	if err := a.validate(); err != nil {
		return fmt.Errorf("sso: %w", err)
	}
	if a.Audit != nil {
		if err := a.Audit.provision(); err != nil {
			return fmt.Errorf("sso: audit: %w", err)
		}
	}
	if a.SCIMLimits != nil {
		if err := a.SCIMLimits.Validate(); err != nil {
			return fmt.Errorf("sso: scim_limits: %w", err)
		}
	}
	return nil
}

func (a *App) validate() error {
	if a.BaseURL == "" {
		return errNoBaseURL
	}
	if err := noPlaceholder("base_url", a.BaseURL); err != nil {
		return err
	}
	if _, err := parseBaseURL(a.BaseURL); err != nil {
		return fmt.Errorf("base_url: %w", err)
	}
	for i, k := range a.SessionKeys {
		if err := checkSessionKey(fmt.Sprintf("session_keys[%d]", i), k); err != nil {
			return err
		}
	}
	if a.DNSResolver != "" {
		if err := noPlaceholder("dns_resolver", a.DNSResolver); err != nil {
			return err
		}
		if err := checkHostPort("dns_resolver", a.DNSResolver); err != nil {
			return err
		}
	}
	for _, d := range []struct {
		opt string
		v   caddy.Duration
		min time.Duration
	}{
		{"session_lifetime", a.SessionLifetime, 0},
		{"session_idle_timeout", a.SessionIdleTimeout, 0},
		{"authn_request_ttl", a.AuthnRequestTTL, 0},
		{"invite_ttl", a.InviteTTL, 0},
		{"domain_recheck_interval", a.DomainRecheckInterval, MinDomainRecheckInterval},
		{"reauth_window", a.ReauthWindow, time.Second},
		{"hsts_max_age", a.HSTSMaxAge, 0},
	} {
		if err := checkDuration(d.opt, d.v, d.min); err != nil {
			return err
		}
	}
	// The last-seen time is written at most once per session.TouchInterval,
	// so it lags real use by up to that much: a shorter idle timeout ends
	// sessions in active use. (One as long as the lifetime never decides.)
	if time.Duration(a.SessionIdleTimeout) < session.MinIdleTimeout && a.SessionIdleTimeout < a.SessionLifetime {
		return fmt.Errorf("session_idle_timeout %s: must be at least %s (a session's activity is recorded once per %s, so a shorter timeout would end sessions in use)",
			time.Duration(a.SessionIdleTimeout), session.MinIdleTimeout, session.TouchInterval)
	}
	if a.ReauthWindow > a.SessionLifetime {
		return fmt.Errorf("reauth_window %s: must not be longer than session_lifetime %s",
			time.Duration(a.ReauthWindow), time.Duration(a.SessionLifetime))
	}
	if a.SessionIdleTimeout > a.SessionLifetime {
		return fmt.Errorf("session_idle_timeout %s: must not be longer than session_lifetime %s",
			time.Duration(a.SessionIdleTimeout), time.Duration(a.SessionLifetime))
	}
	if ph := a.PasswordHashing; ph.MaxConcurrent > maxHashConcurrency {
		return fmt.Errorf("password_hashing max_concurrent %d: at most %d", ph.MaxConcurrent, maxHashConcurrency)
	}
	if err := a.PasswordHashing.provision(); err != nil {
		p := a.PasswordHashing.params()
		return fmt.Errorf("password_hashing (time %d, memory_kib %d, threads %d, max_concurrent %d): %w",
			p.Time, p.MemoryKiB, p.Threads, a.PasswordHashing.MaxConcurrent, err)
	}
	return nil
}

// maxHashConcurrency bounds password_hashing max_concurrent: each hash
// holds its memory cost, so a large value lets a sign-in flood take the
// process's memory.
const maxHashConcurrency = 256

// parseBaseURL accepts an absolute http(s) URL without path, query or
// fragment; a trailing slash is tolerated.
func parseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSuffix(raw, "/"))
	if err != nil {
		return nil, err
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return nil, fmt.Errorf("%q: scheme must be https (or http for local testing)", raw)
	}
	if u.Hostname() == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("%q: want scheme://host[:port] only", raw)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%q: port must be a number from 1 to 65535", raw)
		}
	}
	u.Path = ""
	return u, nil
}

// Start checks that no route matcher lets requests around a gateway (see
// checkGatewayRoutes; every app is provisioned by now), opens the store,
// so that a broken storage path shows up when the config loads rather
// than on the first request, and starts the periodic domain re-check.
func (a *App) Start() error {
	if err := a.checkGatewayRoutes(); err != nil {
		return err
	}
	svc, err := a.Orgs()
	if err != nil {
		return err
	}
	// The store outlives configs: a reload applies its audit bounds here.
	a.shared.store.SetAuditPolicy(a.Audit.policy())
	ctx, cancel := context.WithCancel(context.Background())
	a.shared.stopRecheck = cancel
	a.shared.recheckDone = make(chan struct{})
	go a.recheckDomains(ctx, svc, time.Duration(a.DomainRecheckInterval), a.shared.recheckDone)
	return nil
}

// Stop ends this config's domain re-check. The store outlives the config
// (see Cleanup).
func (a *App) Stop() error {
	if a.shared != nil && a.shared.stopRecheck != nil {
		a.shared.stopRecheck()
		<-a.shared.recheckDone
	}
	return nil
}

// recheckDomains re-verifies DNS-verified domains until ctx ends. Each
// pass checks only the domains not checked for a whole interval (the
// check time is stored on the domain), so passes can run more often than
// the interval: restarts and reloads delay no domain by more than a pass,
// and the old and new config of a reload overlapping for a moment at worst
// ask DNS twice.
func (a *App) recheckDomains(ctx context.Context, svc *orgs.Service, interval time.Duration, done chan<- struct{}) {
	defer close(done)
	pass := min(interval, time.Hour)
	timer := time.NewTimer(min(pass, time.Minute))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		checked, lost, err := svc.RecheckDueDomains(ctx, interval)
		switch {
		case err != nil && ctx.Err() == nil:
			a.logger.Error("re-checking domains", zap.Int("checked", checked), zap.Int("lost", lost), zap.Error(err))
		case checked > 0:
			a.logger.Info("re-checked domains", zap.Int("checked", checked), zap.Int("lost", lost))
		}
		timer.Reset(pass)
	}
}

// Cleanup releases this config's reference to the shared store; the last
// reference closes it.
func (a *App) Cleanup() error {
	if a.shared == nil || !a.shared.opened {
		return nil
	}
	if _, err := stores.Delete(a.storage.poolKey()); err != nil {
		return fmt.Errorf("sso: releasing store: %w", err)
	}
	return nil
}

// Store returns the process-wide store, opening it on first use. Handlers
// call it too, because apps start in map order and the http app may serve
// before this one's Start runs.
func (a *App) Store() (*store.Store, error) {
	s := a.shared
	s.openOnce.Do(func() {
		val, _, err := stores.LoadOrNew(a.storage.poolKey(), func() (caddy.Destructor, error) {
			log := a.logger.Named("store")
			proc := newProcessState()
			b, err := a.storage.open(log)
			if err != nil {
				return nil, err
			}
			st, err := store.OpenBackend(b, store.Options{
				Logger: log, Audit: a.Audit.policy(), ObserveWrite: proc.storeWrites.observe,
			})
			if err != nil {
				return nil, err
			}
			proc.attach(st)
			// Once per process unless every config using the storage is
			// gone: a second line during a reload means the handle was not
			// shared.
			log.Info("opened store", a.storage.describe()...)
			return pooledStore{st, proc, log, a.storage.describe()}, nil
		})
		if err != nil {
			s.openErr = fmt.Errorf("sso: opening the store: %w", err)
			return
		}
		s.opened = true
		s.store, s.proc = val.(pooledStore).Store, val.(pooledStore).proc
		if a.metrics != nil {
			s.proc.storeWrites.h.Store(a.metrics.storeWrites)
		}
	})
	return s.store, s.openErr
}

// countSessions is the active-sessions gauge's reading.
func (a *App) countSessions() (int, error) {
	st, err := a.Store()
	if err != nil {
		return 0, err
	}
	return st.CountSessions()
}

// changesLive is the store_changes_live gauge: 0 also when the store
// cannot be had.
func (a *App) changesLive() float64 {
	st, err := a.Store()
	if err != nil || !st.ChangesLive() {
		return 0
	}
	return 1
}

// pooledStore lets the usage pool close the store with its last reference.
type pooledStore struct {
	*store.Store
	proc *processState
	log  *zap.Logger
	desc []zap.Field
}

func (p pooledStore) Destruct() error {
	err := p.Close()
	p.log.Info("closed store", append(p.desc, zap.Error(err))...)
	return err
}

// provisionStorage loads the storage module; without one, the embedded
// Badger database at storage_path (or its default).
func (a *App) provisionStorage(ctx caddy.Context) error {
	if a.StorageRaw != nil {
		if a.StoragePath != "" {
			return fmt.Errorf("sso: storage_path and storage both given; use one (storage_path is short for storage badger)")
		}
		mod, err := ctx.LoadModule(a, "StorageRaw")
		if err != nil {
			return fmt.Errorf("sso: loading storage module: %w", err)
		}
		st, ok := mod.(Storage)
		if !ok {
			return fmt.Errorf("sso: storage module %T is not an sso storage", mod)
		}
		a.storage = st
		return nil
	}
	x := newExpander()
	x.expand("storage_path", &a.StoragePath, false)
	if x.err != nil {
		return fmt.Errorf("sso: %w", x.err)
	}
	if err := noPlaceholder("storage_path", a.StoragePath); err != nil {
		return fmt.Errorf("sso: %w", err)
	}
	b := &BadgerStorage{Path: a.StoragePath}
	if err := b.Provision(ctx); err != nil {
		return err
	}
	a.storage = b
	return nil
}

// Orgs returns the organization service shared by the admin API and the
// gateway.
func (a *App) Orgs() (*orgs.Service, error) {
	st, err := a.Store()
	if err != nil {
		return nil, err
	}
	s := a.shared
	s.orgsOnce.Do(func() {
		s.orgs = orgs.New(st, a.SPURLs, a.logger.Named("orgs"))
		s.orgs.InviteTTL = time.Duration(a.InviteTTL)
		s.orgs.AllowPrivateMetadataHosts = a.AllowPrivateMetadataURLs || isLoopbackHost(a.baseURL.Hostname())
		if a.DNSResolver != "" {
			s.orgs.Resolver = orgs.NewResolver(a.DNSResolver)
		}
	})
	return s.orgs, nil
}

// registerPrefix records a gateway's route prefix so that URLs the admin
// API shows match what the gateway serves. The first one wins.
func (a *App) registerPrefix(prefix string) {
	a.shared.mu.Lock()
	defer a.shared.mu.Unlock()
	if a.shared.prefix == "" {
		a.shared.prefix = prefix
	}
}

func (a *App) prefix() string {
	a.shared.mu.Lock()
	defer a.shared.mu.Unlock()
	if a.shared.prefix == "" {
		return DefaultPrefix
	}
	return a.shared.prefix
}

// SPURLs returns the service-provider URLs of an organization.
func (a *App) SPURLs(orgID string) orgs.SPURLs {
	return spURLs(a.baseURL.String(), a.prefix(), orgID)
}

func spURLs(base, prefix, orgID string) orgs.SPURLs {
	entity := base + prefix + "/saml/" + url.PathEscape(orgID)
	return orgs.SPURLs{
		EntityID:    entity,
		ACSURL:      entity + "/acs",
		MetadataURL: entity + "/metadata",
	}
}

// sessionKeys returns the configured session keys, or the generated one.
func (a *App) sessionKeys() ([][]byte, error) {
	if len(a.SessionKeys) > 0 {
		keys := make([][]byte, len(a.SessionKeys))
		for i, k := range a.SessionKeys {
			keys[i] = []byte(k)
		}
		return keys, nil
	}
	st, err := a.Store()
	if err != nil {
		return nil, err
	}
	k, err := st.GetOrCreateSecret("session-key", func() ([]byte, error) {
		return randomBytes(32)
	})
	if err != nil {
		return nil, fmt.Errorf("sso: generated session key: %w", err)
	}
	return [][]byte{[]byte(base64.RawStdEncoding.EncodeToString(k))}, nil
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
