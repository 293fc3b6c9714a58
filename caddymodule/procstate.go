package caddymodule

import (
	"time"

	"github.com/ssogate/ssogate/caddymodule/configurator"
	"github.com/ssogate/ssogate/caddymodule/local"
	"github.com/ssogate/ssogate/caddymodule/scim"
)

// processState is what must outlive a config: the throttles that count
// failed password sign-ins and SCIM authentications. A config reload
// that started them afresh would hand every brute-forcer a clean slate
// (and an operator reloads often). It hangs off the pooled store (see
// stores), so the old and new config of a reload, and every config that
// uses the same storage path, share one set; it goes away with the
// store's last reference.
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
	// redirects; a reload in between must not lose a new SCIM token.
	flashes *configurator.Flashes
	// storeWrites times the store's writes for the metrics of the config
	// that used the store last.
	storeWrites *storeWriteObserver
}

func newProcessState() *processState {
	return &processState{
		accounts:     local.NewThrottle(local.ThrottleConfig{Free: 5, Base: time.Second, Max: 15 * time.Minute, Forget: time.Hour}),
		devices:      local.NewThrottle(local.ThrottleConfig{Free: 5, Base: time.Second, Max: 15 * time.Minute, Forget: time.Hour}),
		sources:      local.NewThrottle(local.ThrottleConfig{Free: 20, Base: time.Second, Max: time.Hour, Forget: time.Hour}),
		scimFailures: scim.NewFailureLimiter(0, 0),
		flashes:      configurator.NewFlashes(),
		storeWrites:  &storeWriteObserver{},
	}
}

// processState returns the state shared by every config on this app's
// store, opening the store if needed.
func (a *App) processState() (*processState, error) {
	if _, err := a.Store(); err != nil {
		return nil, err
	}
	return a.shared.proc, nil
}
