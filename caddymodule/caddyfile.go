package caddymodule

import (
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("sso", parseGlobalOption)
	// Not RegisterHandlerDirective: that hides the matcher token from the
	// parser, and a matcher on the gateway decides which requests skip
	// sign-in (see parseGatewayDirective).
	httpcaddyfile.RegisterDirective("sso_gateway", parseGatewayDirective)
	// Before basic_auth, like other authentication handlers, so it runs
	// ahead of reverse_proxy and friends.
	httpcaddyfile.RegisterDirectiveOrder("sso_gateway", httpcaddyfile.Before, "basic_auth")
}

// parseGlobalOption sets up the `sso` app from the global options block:
//
//	{
//	    sso {
//	        base_url             https://app.example.com
//	        storage_path         /var/lib/ssogate   # embedded Badger (the default), or:
//	        storage postgres {                      # PostgreSQL, shared by several replicas
//	            dsn {env.SSOGATE_DATABASE_URL}
//	        }
//	        session_key          {env.SSOGATE_SESSION_KEY}   # 32+ random bytes; repeat to rotate, first seals
//	        dns_resolver         127.0.0.1:53
//	        allow_private_metadata_urls   # IdP metadata URLs may reach internal hosts
//	        session_lifetime     8h    # durations: positive; zero or unset means the default
//	        session_idle_timeout 1h    # at least 2m, at most session_lifetime
//	        reauth_window        5m    # sensitive configurator changes need a sign-in this recent
//	        hsts_max_age         365d  # Strict-Transport-Security on the gateway's https pages
//	        disable_hsts               # ... or none (a front proxy sets it)
//	        authn_request_ttl    10m
//	        invite_ttl           72h
//	        domain_recheck_interval 24h   # at least 1m
//	        password_hashing {
//	            time           3
//	            memory         64MiB
//	            threads        4
//	            max_concurrent 2     # hashes at once; default: one per CPU
//	        }
//	        audit {
//	            max_age          90d     # older events are deleted
//	            max_events       100000  # per organization, newest kept
//	            aggregate_window 1m      # repeated failures: one event with a count
//	        }
//	    }
//	}
//
// String values may hold {env.*} and {file.*} placeholders, expanded when
// the app is provisioned.
func parseGlobalOption(d *caddyfile.Dispenser, _ any) (any, error) {
	app := new(App)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "sso", Value: caddyconfig.JSON(app, nil)}, nil
}

// UnmarshalCaddyfile reads the global `sso` block (see parseGlobalOption).
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // option name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		opt := d.Val()
		switch opt {
		case "base_url", "storage_path", "dns_resolver", "session_key":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			switch opt {
			case "base_url":
				a.BaseURL = v
			case "storage_path":
				a.StoragePath = v
			case "dns_resolver":
				a.DNSResolver = v
			case "session_key":
				a.SessionKeys = append(a.SessionKeys, v)
			}
		case "storage":
			if a.StorageRaw != nil {
				return d.Err("storage: given twice")
			}
			if !d.NextArg() {
				return d.Errf("storage: which one? badger or postgres")
			}
			name := d.Val()
			mod, err := caddyfile.UnmarshalModule(d, "sso.storage."+name)
			if err != nil {
				return err
			}
			a.StorageRaw = caddyconfig.JSONModuleObject(mod, "module", name, nil)
		case "session_lifetime", "session_idle_timeout", "authn_request_ttl", "invite_ttl", "domain_recheck_interval",
			"reauth_window", "hsts_max_age":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil {
				return d.Errf("%s: %v", opt, err)
			}
			// Zero means the default; a negative value is a typo, never
			// a wish for the default.
			if dur < 0 {
				return d.Errf("%s %s: must not be negative", opt, v)
			}
			switch opt {
			case "session_lifetime":
				a.SessionLifetime = caddy.Duration(dur)
			case "session_idle_timeout":
				a.SessionIdleTimeout = caddy.Duration(dur)
			case "authn_request_ttl":
				a.AuthnRequestTTL = caddy.Duration(dur)
			case "invite_ttl":
				a.InviteTTL = caddy.Duration(dur)
			case "domain_recheck_interval":
				a.DomainRecheckInterval = caddy.Duration(dur)
			case "reauth_window":
				a.ReauthWindow = caddy.Duration(dur)
			case "hsts_max_age":
				a.HSTSMaxAge = caddy.Duration(dur)
			}
		case "allow_private_metadata_urls":
			if d.NextArg() {
				return d.ArgErr()
			}
			a.AllowPrivateMetadataURLs = true
		case "disable_hsts":
			if d.NextArg() {
				return d.ArgErr()
			}
			a.DisableHSTS = true
		case "password_hashing":
			if a.PasswordHashing == nil {
				a.PasswordHashing = new(PasswordHashing)
			}
			if err := a.PasswordHashing.unmarshalCaddyfile(d); err != nil {
				return err
			}
		case "audit":
			if a.Audit == nil {
				a.Audit = new(AuditConfig)
			}
			if err := a.Audit.unmarshalCaddyfile(d); err != nil {
				return err
			}
		case "scim_limits":
			if err := a.unmarshalSCIMLimits(d); err != nil {
				return err
			}
		default:
			return d.Errf("unrecognized sso option %q", opt)
		}
	}
	return nil
}

// parseGatewayDirective reads the sso_gateway directive. The gateway takes
// no arguments: a leading path is a matcher everywhere in Caddy, and a
// matcher on the gateway lets every request it does not match through
// without sign-in. A matcher that does not even cover the gateway's own
// endpoints is refused here already; the same check runs again, with the
// whole route tree, when the config starts (see checkGatewayRoutes).
// blockOptions reads a block nested in the `sso` option (audit,
// password_hashing, scim_limits), in which each option takes exactly one
// value, and hands each to set.
func blockOptions(d *caddyfile.Dispenser, set func(opt, v string) error) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		var v string
		if !d.AllArgs(&v) {
			return d.ArgErr()
		}
		if err := set(opt, v); err != nil {
			return err
		}
	}
	return nil
}

func parseGatewayDirective(h httpcaddyfile.Helper) ([]httpcaddyfile.ConfigValue, error) {
	if !h.Next() {
		return nil, h.ArgErr()
	}
	matcherSet, err := h.ExtractMatcherSet()
	if err != nil {
		return nil, err
	}
	g := new(Gateway)
	if err := g.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	if matcherSet != nil {
		if err := adaptTimeCoverage(h, g, matcherSet); err != nil {
			return nil, h.Errf("%v", err)
		}
	}
	return h.NewRoute(matcherSet, g), nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	sso_gateway {
//	    prefix          /sso
//	    public_paths    /health /static/*
//	    protected_paths /app/*
//	    header_preset   default|oauth2-proxy
//	    header          <user_id|user|email|name|groups|org|auth_method|subject> <Header-Name|->
//	    allow_bypass    # only with a matcher: requests it does not match skip sign-in
//	    admin_origin    https://app.example.com:8443   # the configurator is served there, not here
//	    admin_only      # this site serves the gateway's own routes only (the admin_origin's site)
//	    signed_identity {   # also send the identity as a signed JWT (X-SSO-JWT)
//	        header   X-SSO-JWT
//	        audience https://app.example.com   # default: base_url
//	    }
//	}
//
// The directive takes no arguments; `sso_gateway /x` is a path matcher,
// not a prefix. Put it in the site block without a matcher and choose
// what needs a session with public_paths and protected_paths. Values may
// hold {env.*} placeholders, expanded when the handler is provisioned.
func (g *Gateway) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.Errf("sso_gateway takes no arguments, got %q: set the route prefix with the prefix subdirective, "+
			"and choose what needs a session with public_paths/protected_paths", d.Val())
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "prefix":
			if !d.AllArgs(&g.Prefix) {
				return d.ArgErr()
			}
		case "public_paths":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			g.PublicPaths = append(g.PublicPaths, args...)
		case "protected_paths":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			g.ProtectedPaths = append(g.ProtectedPaths, args...)
		case "header_preset":
			if !d.AllArgs(&g.HeaderPreset) {
				return d.ArgErr()
			}
		case "header":
			var field, name string
			if !d.AllArgs(&field, &name) {
				return d.ArgErr()
			}
			if g.Headers == nil {
				g.Headers = new(HeaderNames)
			}
			dst := g.Headers.field(field)
			if dst == nil {
				return d.Errf("unknown identity header field %q (want one of %s)", field, strings.Join(identityFieldNames[:], ", "))
			}
			*dst = name
		case "allow_bypass":
			if d.NextArg() {
				return d.ArgErr()
			}
			g.AllowBypass = true
		case "admin_origin":
			if !d.AllArgs(&g.AdminOrigin) {
				return d.ArgErr()
			}
		case "admin_only":
			if d.NextArg() {
				return d.ArgErr()
			}
			g.AdminOnly = true
		case "signed_identity":
			if d.NextArg() {
				return d.ArgErr()
			}
			g.SignedIdentity = new(SignedIdentity)
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				switch d.Val() {
				case "header":
					if !d.AllArgs(&g.SignedIdentity.Header) {
						return d.ArgErr()
					}
				case "audience":
					args := d.RemainingArgs()
					if len(args) == 0 {
						return d.ArgErr()
					}
					g.SignedIdentity.Audience = append(g.SignedIdentity.Audience, args...)
				default:
					return d.Errf("unrecognized signed_identity option %q", d.Val())
				}
			}
		default:
			return d.Errf("unrecognized sso_gateway option %q", d.Val())
		}
	}
	return nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*App)(nil)
	_ caddyfile.Unmarshaler = (*Gateway)(nil)
)
