package caddymodule

import (
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("sso", parseGlobalOption)
	httpcaddyfile.RegisterHandlerDirective("sso_gateway", parseGatewayDirective)
	// Before basic_auth, like other authentication handlers, so it runs
	// ahead of reverse_proxy and friends.
	httpcaddyfile.RegisterDirectiveOrder("sso_gateway", httpcaddyfile.Before, "basic_auth")
}

// parseGlobalOption sets up the `sso` app from the global options block:
//
//	{
//	    sso {
//	        base_url             https://app.example.com
//	        storage_path         /var/lib/ssogate
//	        session_key          <secret of 32+ characters>   # repeat to rotate; first seals
//	        dns_resolver         127.0.0.1:53
//	        allow_private_metadata_urls   # IdP metadata URLs may reach internal hosts
//	        session_lifetime     8h
//	        session_idle_timeout 1h
//	        authn_request_ttl    10m
//	        invite_ttl           72h
//	        domain_recheck_interval 24h
//	        password_hashing {
//	            time           3
//	            memory         64MiB
//	            threads        4
//	            max_concurrent 2     # hashes at once; default: one per CPU
//	        }
//	    }
//	}
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
		case "session_lifetime", "session_idle_timeout", "authn_request_ttl", "invite_ttl", "domain_recheck_interval":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil {
				return d.Errf("%s: %v", opt, err)
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
			}
		case "allow_private_metadata_urls":
			if d.NextArg() {
				return d.ArgErr()
			}
			a.AllowPrivateMetadataURLs = true
		case "password_hashing":
			if a.PasswordHashing == nil {
				a.PasswordHashing = new(PasswordHashing)
			}
			if err := a.PasswordHashing.unmarshalCaddyfile(d); err != nil {
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

func parseGatewayDirective(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	g := new(Gateway)
	err := g.UnmarshalCaddyfile(h.Dispenser)
	return g, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	sso_gateway [<prefix>] {
//	    prefix          /sso
//	    public_paths    /health /static/*
//	    protected_paths /app/*
//	    header_preset   default|oauth2-proxy
//	    header          <user_id|user|email|name|groups|org|auth_method> <Header-Name|->
//	}
func (g *Gateway) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		g.Prefix = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
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
			dst := map[string]*string{
				"user_id": &g.Headers.UserID, "user": &g.Headers.User, "email": &g.Headers.Email,
				"name": &g.Headers.Name, "groups": &g.Headers.Groups, "org": &g.Headers.Org,
				"auth_method": &g.Headers.AuthMethod,
			}[strings.ToLower(field)]
			if dst == nil {
				return d.Errf("unknown identity header field %q", field)
			}
			*dst = name
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
