package caddymodule

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dustin/go-humanize"

	"github.com/ssogate/ssogate/caddymodule/local"
	"github.com/ssogate/ssogate/store"
)

// PasswordHashing sets the cost of the argon2id hashes of local accounts'
// passwords (see the `sso` app's password_hashing).
type PasswordHashing struct {
	// Passes over memory. Default: 3.
	Time uint32 `json:"time,omitempty"`

	// Memory one hash uses, in KiB (8 MiB to 1 GiB). Default: 65536
	// (64 MiB). The Caddyfile takes sizes such as `64MiB`.
	MemoryKiB uint32 `json:"memory_kib,omitempty"`

	// Degree of parallelism (lanes). Default: 4.
	Threads uint8 `json:"threads,omitempty"`

	// How many hashes run at once; more sign-in attempts wait their turn,
	// so a flood of them costs at most max_concurrent × memory. Default:
	// one per CPU.
	MaxConcurrent int `json:"max_concurrent,omitempty"`

	// How many more hashes may wait for their turn. Beyond that a sign-in
	// or set-password attempt is answered 503 at once, unchecked and not
	// counted as a failure, instead of queueing without end. Default: 16
	// per concurrent hash.
	MaxQueued int `json:"max_queued,omitempty"`

	// How many password attempts (sign-in or set-password) one client
	// address (an IPv6 client by its /64) may have in flight at once.
	// More are answered 429 at once, unchecked and not counted as
	// failures, so that one client cannot fill the queue. Default: 2.
	MaxPerSource int `json:"max_per_source,omitempty"`
}

func (p *PasswordHashing) params() local.Params {
	return local.Params{Time: p.Time, MemoryKiB: p.MemoryKiB, Threads: p.Threads}.WithDefaults()
}

// maxHashQueue bounds max_queued and max_per_source: far more than any
// gateway can hash within a request's time, and no overflow when added.
const maxHashQueue = 1 << 16

func (p *PasswordHashing) provision() error {
	switch {
	case p.MaxConcurrent < 0:
		return fmt.Errorf("max_concurrent must not be negative")
	case p.MaxQueued < 0 || p.MaxQueued > maxHashQueue:
		return fmt.Errorf("max_queued %d: must be between 0 (default) and %d", p.MaxQueued, maxHashQueue)
	case p.MaxPerSource < 0 || p.MaxPerSource > maxHashQueue:
		return fmt.Errorf("max_per_source %d: must be between 0 (default) and %d", p.MaxPerSource, maxHashQueue)
	}
	return p.params().Validate()
}

// unmarshalCaddyfile reads the password_hashing block of the `sso` global
// option (see parseGlobalOption).
func (p *PasswordHashing) unmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return blockOptions(d, func(opt, v string) error {
		switch opt {
		case "memory":
			b, err := humanize.ParseBytes(v)
			if err != nil || b/1024 > 1<<32-1 {
				return d.Errf("password_hashing memory %q: want a size such as 64MiB", v)
			}
			p.MemoryKiB = uint32(b / 1024)
		case "time", "threads", "max_concurrent", "max_queued", "max_per_source":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return d.Errf("password_hashing %s %q: want a positive number", opt, v)
			}
			switch opt {
			case "time":
				p.Time = uint32(n)
			case "threads":
				if n > 255 {
					return d.Errf("password_hashing threads: at most 255")
				}
				p.Threads = uint8(n)
			case "max_concurrent":
				p.MaxConcurrent = int(n)
			case "max_queued":
				p.MaxQueued = int(n)
			case "max_per_source":
				p.MaxPerSource = int(n)
			}
		default:
			return d.Errf("unrecognized password_hashing option %q", opt)
		}
		return nil
	})
}

// newAuthenticator sets up password sign-in with the throttles kept in
// the store (see processState).
func newAuthenticator(st *store.Store, h local.Hasher, ps *processState, inFlight *local.InFlight, devices *local.Devices) *local.Authenticator {
	return &local.Authenticator{
		Store:        st,
		Hasher:       h,
		Accounts:     ps.accounts,
		Devices:      ps.devices,
		Sources:      ps.sources,
		InFlight:     inFlight,
		DeviceTokens: devices,
	}
}

// deviceCookieAge is how long a browser keeps its trusted-device cookie:
// as long as the server honours the token in it.
const deviceCookieAge = local.DeviceTokenLifetime

// localState is what local accounts need at request time. It belongs to
// the app, so every sso_gateway handler of a config shares it; its
// throttles count in the store (see processState), so a config reload
// keeps them and other replicas share them, while the hasher and the
// in-flight bound, which protect this machine's CPU, are this process's.
type localState struct {
	auth   *local.Authenticator
	hasher local.Hasher
	// inFlight bounds the password attempts in flight per source, for
	// sign-in (through auth) and set-password alike.
	inFlight *local.InFlight
	devices  *local.Devices
	csrf     *local.CSRF
	origin   *http.CrossOriginProtection
}

// localState builds the app's local-account state, once.
func (a *App) localState() (*localState, error) {
	s := a.shared
	s.localOnce.Do(func() {
		st, err := a.Store()
		if err != nil {
			s.localErr = err
			return
		}
		keys, err := a.sessionKeys()
		if err != nil {
			s.localErr = err
			return
		}
		ps, err := a.processState()
		if err != nil {
			s.localErr = err
			return
		}
		ph := a.PasswordHashing
		if ph == nil {
			ph = new(PasswordHashing)
		}
		hasher, err := local.NewArgon2id(ph.params(), ph.MaxConcurrent, ph.MaxQueued)
		if err != nil {
			s.localErr = fmt.Errorf("sso: %w", err)
			return
		}
		devices, err := local.NewDevices(keys)
		if err != nil {
			s.localErr = fmt.Errorf("sso: %w", err)
			return
		}
		csrf, err := local.NewCSRF(keys)
		if err != nil {
			s.localErr = fmt.Errorf("sso: %w", err)
			return
		}
		inFlight := local.NewInFlight(ph.MaxPerSource)
		s.local = &localState{
			auth:     newAuthenticator(st, hasher, ps, inFlight, devices),
			hasher:   hasher,
			inFlight: inFlight,
			devices:  devices,
			csrf:     csrf,
			origin:   http.NewCrossOriginProtection(),
		}
	})
	return s.local, s.localErr
}

// Cookies of local accounts. Like the session cookie they take the
// `__Host-` prefix when Secure, so a sibling subdomain cannot plant them.
const (
	// preCSRFCookie binds the CSRF token of the sign-in and set-password
	// forms, which are shown before there is a session.
	preCSRFCookie = "ssogate_csrf"
	// deviceCookie marks a browser trusted for an account (local.Devices).
	deviceCookie = "ssogate_device"
)

func (g *Gateway) cookieName(base string) string {
	if g.secure {
		return "__Host-" + base
	}
	return base
}

func (g *Gateway) setCookie(w http.ResponseWriter, base, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name:     g.cookieName(base),
		Value:    value,
		Path:     "/",
		MaxAge:   int(maxAge / time.Second),
		Secure:   g.secure,
		HttpOnly: true,
		// Strict: these cookies never need to travel on a request another
		// site started.
		SameSite: http.SameSiteStrictMode,
	})
}

func (g *Gateway) cookie(r *http.Request, base string) string {
	c, err := r.Cookie(g.cookieName(base))
	if err != nil {
		return ""
	}
	return c.Value
}
