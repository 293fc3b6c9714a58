// Package caddymodule plugs ssogate into Caddy: the `sso` app that owns the
// store, the `sso_gateway` HTTP handler that guards an upstream application,
// their Caddyfile syntax, and the operator's admin API under /sso/.
package caddymodule

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/ssogate/ssogate/caddymodule/orgs"
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
)

// App is the `sso` Caddy app. It owns the single store handle of the
// process and the gateway-wide settings every sso_gateway handler shares.
type App struct {
	// Directory of the embedded database. Default: `ssogate` under Caddy's
	// data directory.
	StoragePath string `json:"storage_path,omitempty"`

	// The external URL of the gateway (scheme, host and optional port, no
	// path), e.g. `https://app.example.com`. SAML entity IDs, ACS URLs and
	// SCIM base URLs are built from it, so it must be what browsers and
	// IdPs use. Required.
	BaseURL string `json:"base_url,omitempty"`

	// Keys that protect session cookies. Each is a secret of at least 32
	// bytes (any string; a random base64 string is a good choice). The first
	// key seals new cookies; the others are still accepted, so keys can be
	// rotated without signing everyone out. When empty, a random key is
	// generated once and kept in the store.
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
	// Default: 24h.
	DomainRecheckInterval caddy.Duration `json:"domain_recheck_interval,omitempty"`

	// Absolute lifetime of a session. Default: 8h.
	SessionLifetime caddy.Duration `json:"session_lifetime,omitempty"`

	// A session unused for this long ends. Default: 1h.
	SessionIdleTimeout caddy.Duration `json:"session_idle_timeout,omitempty"`

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

	// Caps on what each organization's SCIM client can make the gateway
	// parse, store and send (sizes, depths, counts, concurrency); see
	// scim.Limits for each field and its default.
	SCIMLimits *SCIMLimits `json:"scim_limits,omitempty"`

	logger  *zap.Logger
	baseURL *url.URL

	// shared survives the by-value copies Caddy makes of modules.
	shared *appState
}

// appState is the part of the app that is created lazily and must be the
// same for every copy of the module value.
type appState struct {
	openOnce sync.Once
	opened   bool
	store    *store.Store
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

// Provision checks the configuration and resolves defaults. It does not
// open the store: `caddy validate` provisions modules in a second process
// while the server runs, and must not fight it for the database lock.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	a.shared = &appState{}
	if a.StoragePath == "" {
		a.StoragePath = filepath.Join(caddy.AppDataDir(), "ssogate")
	}
	abs, err := filepath.Abs(a.StoragePath)
	if err != nil {
		return fmt.Errorf("sso: storage_path: %w", err)
	}
	a.StoragePath = abs
	if a.BaseURL == "" {
		return fmt.Errorf("sso: base_url is required (the URL browsers and IdPs use to reach the gateway)")
	}
	u, err := parseBaseURL(a.BaseURL)
	if err != nil {
		return fmt.Errorf("sso: base_url: %w", err)
	}
	a.baseURL = u
	for i, k := range a.SessionKeys {
		if len(k) < 32 {
			return fmt.Errorf("sso: session_keys[%d]: must be at least 32 characters", i)
		}
	}
	if a.DNSResolver != "" {
		if _, _, err := net.SplitHostPort(a.DNSResolver); err != nil {
			return fmt.Errorf("sso: dns_resolver %q: want host:port: %w", a.DNSResolver, err)
		}
	}
	if a.SessionLifetime <= 0 {
		a.SessionLifetime = caddy.Duration(DefaultSessionLifetime)
	}
	if a.SessionIdleTimeout <= 0 {
		a.SessionIdleTimeout = caddy.Duration(DefaultSessionIdle)
	}
	if a.AuthnRequestTTL <= 0 {
		a.AuthnRequestTTL = caddy.Duration(DefaultAuthnRequestTTL)
	}
	if a.DomainRecheckInterval <= 0 {
		a.DomainRecheckInterval = caddy.Duration(DefaultDomainRecheck)
	}
	if a.InviteTTL <= 0 {
		a.InviteTTL = caddy.Duration(orgs.DefaultInviteTTL)
	}
	if a.PasswordHashing == nil {
		a.PasswordHashing = new(PasswordHashing)
	}
	if err := a.PasswordHashing.provision(); err != nil {
		return fmt.Errorf("sso: password_hashing: %w", err)
	}
	if a.SCIMLimits != nil {
		if err := a.SCIMLimits.Validate(); err != nil {
			return fmt.Errorf("sso: scim_limits: %w", err)
		}
	}
	return nil
}

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
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("%q: want scheme://host[:port] only", raw)
	}
	u.Path = ""
	return u, nil
}

// Start opens the store, so that a broken storage path shows up when the
// config loads rather than on the first request, and starts the periodic
// domain re-check.
func (a *App) Start() error {
	svc, err := a.Orgs()
	if err != nil {
		return err
	}
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
	if _, err := stores.Delete(a.StoragePath); err != nil {
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
		val, _, err := stores.LoadOrNew(a.StoragePath, func() (caddy.Destructor, error) {
			log := a.logger.Named("store")
			st, err := store.Open(a.StoragePath, store.Options{Logger: log})
			if err != nil {
				return nil, err
			}
			// Once per process unless every config using the path is gone:
			// a second line during a reload means the handle was not shared.
			log.Info("opened store", zap.String("path", a.StoragePath))
			return pooledStore{st, log, a.StoragePath}, nil
		})
		if err != nil {
			s.openErr = fmt.Errorf("sso: opening store at %s: %w", a.StoragePath, err)
			return
		}
		s.opened = true
		s.store = val.(pooledStore).Store
	})
	return s.store, s.openErr
}

// pooledStore lets the usage pool close the store with its last reference.
type pooledStore struct {
	*store.Store
	log  *zap.Logger
	path string
}

func (p pooledStore) Destruct() error {
	err := p.Close()
	p.log.Info("closed store", zap.String("path", p.path), zap.Error(err))
	return err
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
	_ caddy.CleanerUpper = (*App)(nil)
)
