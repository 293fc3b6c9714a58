package local

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ssogate/ssogate/identity"
	"github.com/ssogate/ssogate/store"
)

// Authentication methods of password sessions, as X-SSO-Auth-Method
// reports them.
const (
	// MethodBackup: the org's designated backup login, while its SSO is
	// active.
	MethodBackup = "backup"
	// MethodPassword: a local account of an org whose SSO is not active
	// (how the owner gets in to configure it).
	MethodPassword = "password"
)

// Outcome is how a sign-in attempt ended.
type Outcome string

// Outcomes. Only OutcomeSuccess starts a session. The outcomes after
// OutcomeLocked are given only to someone who knew the password, so they
// may say more than "wrong email or password".
const (
	OutcomeSuccess        Outcome = "success"
	OutcomeBadCredentials Outcome = "bad_credentials" // unknown address, no password yet, or wrong password
	OutcomeLocked         Outcome = "locked"          // throttled: not checked at all
	OutcomeBusy           Outcome = "busy"            // the source has too many attempts in flight: not checked
	OutcomeOverloaded     Outcome = "overloaded"      // the password hasher's queue, or the throttle's, is full: not checked

	OutcomeDisabled      Outcome = "disabled"       // the account is deactivated
	OutcomeForeignDomain Outcome = "foreign_domain" // the address's domain is verified by another organization
	OutcomeUseSSO        Outcome = "use_sso"        // the org's SSO is active and the address is in its domains
	OutcomeSSOOnly       Outcome = "sso_only"       // the org's SSO is active and this is not its backup login
)

// Throttle scopes.
const (
	ScopeAccount = "account"
	ScopeSource  = "source"
	ScopeDevice  = "device"
)

// Lock is a lock that a failed attempt started.
type Lock struct {
	Scope    string // ScopeAccount, ScopeSource or ScopeDevice
	Duration time.Duration
}

// Attempt is one password sign-in attempt.
type Attempt struct {
	Email    string
	Password string
	// OrgHint is the org ID from the link the person followed, if any; it
	// picks the account when an address has one in several orgs.
	OrgHint string
	// SourceIP is the client's address, for the per-source throttle.
	SourceIP string
	// DeviceToken is the browser's trusted-device token, if it sent one;
	// Authenticate checks it against the account tried.
	DeviceToken string
}

// Result is what Authenticate decided.
type Result struct {
	Outcome Outcome
	// Email is the normalized address tried.
	Email string
	// User and Org are the account tried and its organization, when the
	// address belongs to a local account (nil otherwise).
	User *store.User
	Org  *store.Org
	// Method is MethodBackup or MethodPassword on success.
	Method string
	// RetryAfter, LockScope and FirstRefusal describe an OutcomeLocked:
	// how long the lock lasts, what is locked, and whether this is the
	// first refusal of that lock (report it; later ones are repeats).
	RetryAfter   time.Duration
	LockScope    string
	FirstRefusal bool
	// NewLocks are the locks this failed attempt started.
	NewLocks []Lock
	// TrustedDevice: the attempt came with a valid trusted-device token
	// for the account, so it was throttled per device.
	TrustedDevice bool
}

// Authenticator decides password sign-ins for local accounts.
//
// Every attempt that is not throttled costs exactly one password
// verification with Hasher, whether the address is unknown, belongs to
// an account without a password yet, or has a password that is wrong or
// right; only after a correct password does the outcome say anything
// about the account. So the response and its timing do not tell whether
// an address has an account. (Index lookups before the hash take
// microseconds against the hash's tens of milliseconds.) Throttled
// attempts are refused before any lookup of the password, the same way
// for every address, known or not.
//
// Throttling: an attempt from a browser with a trusted-device token for
// the address counts against that device alone. Any other attempt counts
// against its source address and against the account's address (keyed by
// the address as typed, so unknown addresses lock the same way). An
// attempt is counted as a failure when it is admitted, before the hash,
// and refunded if it succeeds (see Throttle), so attempts sent at once
// get no more checks than attempts sent one after another. Besides,
// InFlight bounds the attempts one source has in flight, the hasher's
// queue bounds them all (ErrBusy), and so does the store's bound on
// throttle transactions in flight (store.ErrThrottleBusy); an attempt
// refused by any of them is answered at once, without a hash, and not
// counted.
type Authenticator struct {
	Store    *store.Store
	Hasher   Hasher
	Accounts *Throttle
	Sources  *Throttle
	Devices  *Throttle
	// InFlight bounds the attempts in flight per source (nil: no bound).
	InFlight *InFlight
	// DeviceTokens checks Attempt.DeviceToken (nil: no device is trusted).
	DeviceTokens *Devices
	// Now is the clock for LastLogin (default time.Now).
	Now func() time.Time

	dummy dummyHash
}

// NormalizeEmail is the form in which local accounts' addresses are
// stored, looked up and throttled: trimmed, in identity.Key form (ASCII
// letters lower-cased, never other scripts' letters, and an
// internationalized domain as its A-label, the form in which verified
// domains are kept).
func NormalizeEmail(s string) string {
	return identity.Key(strings.TrimSpace(s))
}

// EmailDomain returns the part after the last @, or "".
func EmailDomain(email string) string {
	at := strings.LastIndexByte(email, '@')
	if at < 1 || at == len(email)-1 {
		return ""
	}
	return email[at+1:]
}

type throttleKey struct {
	t     *Throttle
	scope string
	key   string
}

// Authenticate decides an attempt. Errors are internal failures (store,
// randomness); a refused attempt is a Result, not an error.
func (a *Authenticator) Authenticate(ctx context.Context, at Attempt) (Result, error) {
	email := NormalizeEmail(at.Email)
	res := Result{Email: email}

	user, org, domainOwner, err := a.resolve(email, at.OrgHint)
	if err != nil {
		return res, err
	}
	res.User, res.Org = user, org

	if a.InFlight != nil {
		release, ok := a.InFlight.Acquire(at.SourceIP)
		if !ok {
			res.Outcome = OutcomeBusy
			return res, nil
		}
		defer release()
	}

	// A device token counts only for the account it was issued to, at its
	// current credentials; an unknown address has no trusted devices.
	deviceID := ""
	if at.DeviceToken != "" && user != nil && a.DeviceTokens != nil {
		deviceID, res.TrustedDevice = a.DeviceTokens.Verify(at.DeviceToken, user)
	}
	var keys []throttleKey
	if res.TrustedDevice {
		keys = []throttleKey{{a.Devices, ScopeDevice, deviceID}}
	} else {
		keys = []throttleKey{{a.Sources, ScopeSource, at.SourceIP}, {a.Accounts, ScopeAccount, email}}
	}
	// Each key counts this attempt as a failure now (see Throttle), all in
	// one store transaction; the attempt is refunded below unless its
	// password is checked and wrong. A throttle that cannot count fails
	// the attempt unchecked (an internal error), and a refund that fails
	// leaves a failure counted: either way the error is on the side of
	// fewer guesses.
	tks := make([]ThrottleKey, len(keys))
	for i, k := range keys {
		tks[i] = ThrottleKey{T: k.t, Key: k.key}
	}
	reserved, locked, v, err := ReserveAll(tks)
	switch {
	case errors.Is(err, store.ErrThrottleBusy):
		// This process has as many throttle transactions under way as it
		// allows (a flood of attempts): refused unchecked, like a full
		// hasher queue.
		res.Outcome = OutcomeOverloaded
		return res, nil
	case err != nil:
		return res, err
	case v.Locked:
		res.Outcome = OutcomeLocked
		res.RetryAfter, res.LockScope, res.FirstRefusal = v.RetryAfter, keys[locked].scope, v.FirstRefusal
		return res, nil
	}
	refund := func() error {
		var errs []error
		for _, r := range reserved {
			errs = append(errs, r.Refund())
		}
		return errors.Join(errs...)
	}

	// The one hash of this attempt.
	hash := ""
	if user != nil {
		hash = user.PasswordHash
	}
	var ok bool
	if hash == "" {
		hash, err = a.dummy.get(ctx, a.Hasher)
	}
	if err == nil {
		ok, err = a.Hasher.Verify(ctx, hash, at.Password)
	}
	if err != nil {
		// Nothing was checked (the hasher was busy, the request ended,
		// the stored hash is unreadable): nothing to count.
		if rerr := refund(); rerr != nil {
			return res, errors.Join(fmt.Errorf("verifying password: %w", err), rerr)
		}
		if errors.Is(err, ErrBusy) {
			res.Outcome = OutcomeOverloaded
			return res, nil
		}
		return res, fmt.Errorf("verifying password: %w", err)
	}
	if !ok || user == nil || user.PasswordHash == "" {
		res.Outcome = OutcomeBadCredentials
		for i, r := range reserved {
			if d := r.Lock(); d > 0 {
				res.NewLocks = append(res.NewLocks, Lock{Scope: keys[i].scope, Duration: d})
			}
		}
		return res, nil
	}

	// The password is right; from here on the outcome may be specific.
	// A right password is no failure, whatever keeps it from signing in:
	// the attempt is refunded, though only a success resets the keys.
	if err := refund(); err != nil {
		return res, err
	}
	switch {
	case !user.Active:
		res.Outcome = OutcomeDisabled
		return res, nil
	case domainOwner != "" && domainOwner != org.ID:
		// Another organization proved it owns this address's domain: the
		// address is theirs now, and an account elsewhere under it could
		// pass for one of their people upstream.
		res.Outcome = OutcomeForeignDomain
		return res, nil
	}
	method := MethodPassword
	if org.State == store.OrgActive {
		switch {
		case user.ID == org.BackupLogin:
			method = MethodBackup
		case domainOwner == org.ID:
			res.Outcome = OutcomeUseSSO
			return res, nil
		default:
			res.Outcome = OutcomeSSOOnly
			return res, nil
		}
	}

	for _, k := range keys {
		if k.scope != ScopeSource { // see the README: a success must not clear a source's record
			if err := k.t.Reset(k.key); err != nil {
				return res, err
			}
		}
	}
	updated, err := a.recordLogin(ctx, user, at.Password)
	if err != nil {
		return res, err
	}
	res.Outcome, res.User, res.Method = OutcomeSuccess, updated, method
	return res, nil
}

// resolve finds the local account an address signs in to, its org, and
// the org that verified the address's domain ("" if none).
func (a *Authenticator) resolve(email, hint string) (*store.User, *store.Org, string, error) {
	domainOwner := ""
	if d := EmailDomain(email); d != "" {
		owner, err := a.Store.OrgForDomain(d)
		switch {
		case err == nil:
			domainOwner = owner
		case !errors.Is(err, store.ErrNotFound):
			return nil, nil, "", fmt.Errorf("looking up domain: %w", err)
		}
	}
	if email == "" || len(email) > 254 {
		return nil, nil, domainOwner, nil
	}
	accounts, err := a.Store.LocalAccountsByEmail(email)
	if err != nil {
		return nil, nil, "", fmt.Errorf("looking up local accounts: %w", err)
	}
	if len(accounts) == 0 {
		return nil, nil, domainOwner, nil
	}
	// Several organizations may each have a local account under one
	// address (an IT provider owning several): the org that verified the
	// address's domain decides, else the org of the link followed, else
	// the oldest account. (An account elsewhere under a domain another
	// org verified could not sign in anyway.)
	user := accounts[0]
	for _, pref := range []string{hint, domainOwner} {
		for _, u := range accounts {
			if pref != "" && u.OrgID == pref {
				user = u
			}
		}
	}
	org, err := a.Store.GetOrg(user.OrgID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, domainOwner, nil
	}
	if err != nil {
		return nil, nil, "", fmt.Errorf("loading organization: %w", err)
	}
	return user, org, domainOwner, nil
}

// recordLogin sets LastLogin and, when the hash was made with other
// parameters than the current ones, replaces it: the password is at hand
// only now.
func (a *Authenticator) recordLogin(ctx context.Context, user *store.User, password string) (*store.User, error) {
	oldHash, newHash := user.PasswordHash, ""
	if a.Hasher.NeedsRehash(oldHash) {
		// A failure here only postpones the upgrade to the next sign-in.
		newHash, _ = a.Hasher.Hash(ctx, password)
	}
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	t := now().UTC().Round(0)
	u, err := a.Store.UpdateUser(user.OrgID, user.ID, func(u *store.User) error {
		u.LastLogin = t
		if newHash != "" && u.PasswordHash == oldHash {
			u.PasswordHash = newHash
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("recording sign-in: %w", err)
	}
	return u, nil
}
