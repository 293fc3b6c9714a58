package caddymodule

import (
	"fmt"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/ssogate/ssogate/store"
)

// Bounds of AuditConfig's options.
const (
	minAuditMaxAge    = time.Hour
	minAuditMaxEvents = 100
	minAuditWindow    = time.Second
	// A longer window would hold more in memory and lose more in a crash
	// (aggregates are written when their window ends).
	maxAuditWindow = time.Hour
)

// AuditConfig bounds the audit trail (see the `sso` app's audit).
type AuditConfig struct {
	// Events older than this are deleted. Default: 90d.
	MaxAge caddy.Duration `json:"max_age,omitempty"`

	// Each organization keeps about this many of its newest events (the
	// gateway-wide trail too); older ones are deleted. Default: 100000.
	MaxEvents int `json:"max_events,omitempty"`

	// Repeats of the same failure that anyone can cause (a wrong SCIM
	// token, a failed sign-in, a refused SAML response) within this
	// window are recorded as one event with a count, the first and last
	// time and a sample of sources. Default: 1m.
	AggregateWindow caddy.Duration `json:"aggregate_window,omitempty"`
}

func (c *AuditConfig) provision() error {
	switch {
	case c.MaxAge < 0 || (c.MaxAge > 0 && time.Duration(c.MaxAge) < minAuditMaxAge):
		return fmt.Errorf("max_age %s: want at least %s", time.Duration(c.MaxAge), minAuditMaxAge)
	case c.MaxEvents < 0 || (c.MaxEvents > 0 && c.MaxEvents < minAuditMaxEvents):
		return fmt.Errorf("max_events %d: want at least %d", c.MaxEvents, minAuditMaxEvents)
	case c.AggregateWindow < 0 || (c.AggregateWindow > 0 && (time.Duration(c.AggregateWindow) < minAuditWindow || time.Duration(c.AggregateWindow) > maxAuditWindow)):
		return fmt.Errorf("aggregate_window %s: want between %s and %s", time.Duration(c.AggregateWindow), minAuditWindow, maxAuditWindow)
	}
	return nil
}

// policy is the store's form, with zero fields left to its defaults.
func (c *AuditConfig) policy() store.AuditPolicy {
	if c == nil {
		return store.AuditPolicy{}
	}
	return store.AuditPolicy{
		MaxAge:    time.Duration(c.MaxAge),
		MaxEvents: c.MaxEvents,
		Window:    time.Duration(c.AggregateWindow),
	}
}

// unmarshalCaddyfile reads the audit block of the `sso` global option
// (see parseGlobalOption).
func (c *AuditConfig) unmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return blockOptions(d, func(opt, v string) error {
		switch opt {
		case "max_age", "aggregate_window":
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return d.Errf("audit %s %q: want a duration such as 90d or 1m", opt, v)
			}
			if opt == "max_age" {
				c.MaxAge = caddy.Duration(dur)
			} else {
				c.AggregateWindow = caddy.Duration(dur)
			}
		case "max_events":
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return d.Errf("audit max_events %q: want a positive number", v)
			}
			c.MaxEvents = n
		default:
			return d.Errf("unrecognized audit option %q", opt)
		}
		return nil
	})
}
