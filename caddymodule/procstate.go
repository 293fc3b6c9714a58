package caddymodule

import (
	"time"

	"github.com/ssogate/ssogate/caddymodule/configurator"
	"github.com/ssogate/ssogate/caddymodule/local"
	"github.com/ssogate/ssogate/caddymodule/scim"
	"github.com/ssogate/ssogate/store"
)

// processState is what must outlive a config: the throttles that count
// failed password sign-ins and SCIM authentications, the admin pages'
// flashes and the store's write metrics. A config reload that started
// them afresh would hand every brute-forcer a clean slate (and an
// operator reloads often). It hangs off the pooled store (see stores), so
// the old and new config of a reload, and every config that uses the
// same storage, share one set; it goes away with the store's last
// reference.
//
// The throttles' counts and the flashes themselves are records of the
// store, so every gateway process on the same backend shares them (N
// replicas give an attacker no more guesses than one; a post's redirect
// may land on any replica). What stays per process is what protects this
// process's CPU: the password hasher's queue and the per-source bound on
// attempts in flight (see localState).
type processState struct {
	// Password sign-in (local.Authenticator). The README explains the
	// balance: the per-account lock is short and capped, and browsers
	// that signed in to the account before (trusted devices) are
	// throttled on their own, so an attacker cannot lock the backup
	// login's owner out.
	//
	// Unlike SCIM's, these are consulted before the password is checked,
	// and a locked source or account is refused even with the right
	// password: a password is guessable where a SCIM token is not, so the
	// lock must also stop a guess that happens to be right. The price is
	// that a user behind a shared address (an office NAT) can be refused
	// during a lock others caused; a trusted device is the way past it.
	accounts, devices, sources *local.Throttle

	// scimFailures throttles failed SCIM authentications per source and
	// organization; a valid token always passes (see scim.Server.admit).
	scimFailures *scim.FailureLimiter

	// flashes carry the admin pages' post outcomes across their
	// redirects, to whichever process serves the redirect.
	flashes *configurator.Flashes
	// storeWrites times the store's writes for the metrics of the config
	// that used the store last.
	storeWrites *storeWriteObserver
}

// newProcessState returns the state of a store about to be opened; attach
// completes it once the store is open.
func newProcessState() *processState {
	return &processState{storeWrites: &storeWriteObserver{}}
}

// attach sets up what keeps its state in st.
func (p *processState) attach(st *store.Store) {
	p.accounts = local.NewThrottle(st, local.ScopeAccount, local.ThrottleConfig{Free: 5, Base: time.Second, Max: 15 * time.Minute, Forget: time.Hour})
	p.devices = local.NewThrottle(st, local.ScopeDevice, local.ThrottleConfig{Free: 5, Base: time.Second, Max: 15 * time.Minute, Forget: time.Hour})
	p.sources = local.NewThrottle(st, local.ScopeSource, local.ThrottleConfig{Free: 20, Base: time.Second, Max: time.Hour, Forget: time.Hour})
	p.scimFailures = scim.NewFailureLimiter(st, 0, 0)
	p.flashes = configurator.NewFlashes(st)
}

// processState returns the state shared by every config on this app's
// store, opening the store if needed.
func (a *App) processState() (*processState, error) {
	if _, err := a.Store(); err != nil {
		return nil, err
	}
	return a.shared.proc, nil
}
