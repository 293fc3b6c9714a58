package caddymodule

import (
	"strconv"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dustin/go-humanize"

	"github.com/ssogate/ssogate/caddymodule/scim"
)

// SCIMLimits is the `sso` app's scim_limits: caps on what each
// organization's SCIM client can make the gateway parse, store and send.
type SCIMLimits = scim.Limits

// unmarshalSCIMLimits reads the scim_limits block of the `sso` global
// option:
//
//	scim_limits {
//	    max_request_size  2MiB
//	    max_url_length    8192
//	    max_filter_length 4096
//	    max_filter_depth  16
//	    max_json_depth    32
//	    max_string_length 1024
//	    max_multi_valued  100
//	    max_resource_size 64KiB
//	    max_page_size     2MiB
//	    max_group_members 50000
//	    max_users         100000
//	    max_groups        20000
//	    max_stored_bytes  1GiB
//	    max_concurrent    4
//	}
//
// Sizes take units (64KiB); the others are counts. See scim.Limits for
// what each one caps and why its default is what it is.
func (a *App) unmarshalSCIMLimits(d *caddyfile.Dispenser) error {
	if a.SCIMLimits == nil {
		a.SCIMLimits = new(SCIMLimits)
	}
	l := a.SCIMLimits
	err := blockOptions(d, func(opt, v string) error {
		switch opt {
		case "max_stored_bytes":
			// A total on disk, not a buffer: it may go well past 1 GiB.
			b, err := humanize.ParseBytes(v)
			if err != nil || b == 0 || b > 1<<50 {
				return d.Errf("scim_limits %s %q: want a size such as 4GiB", opt, v)
			}
			l.MaxStoredBytes = int64(b)
			return nil
		case "max_request_size", "max_resource_size", "max_page_size":
			b, err := humanize.ParseBytes(v)
			if err != nil || b == 0 || b > 1<<30 {
				return d.Errf("scim_limits %s %q: want a size such as 64KiB, at most 1GiB", opt, v)
			}
			switch opt {
			case "max_request_size":
				l.MaxRequestBytes = int64(b)
			case "max_resource_size":
				l.MaxResourceBytes = int(b)
			case "max_page_size":
				l.MaxPageBytes = int(b)
			}
			return nil
		}
		field := map[string]*int{
			"max_url_length":    &l.MaxURLLength,
			"max_filter_length": &l.MaxFilterLength,
			"max_filter_depth":  &l.MaxFilterDepth,
			"max_json_depth":    &l.MaxJSONDepth,
			"max_string_length": &l.MaxStringLength,
			"max_multi_valued":  &l.MaxMultiValued,
			"max_group_members": &l.MaxGroupMembers,
			"max_users":         &l.MaxUsers,
			"max_groups":        &l.MaxGroups,
			"max_concurrent":    &l.MaxConcurrent,
		}[opt]
		if field == nil {
			return d.Errf("unrecognized scim_limits option %q", opt)
		}
		n, err := strconv.ParseUint(v, 10, 31)
		if err != nil || n == 0 {
			return d.Errf("scim_limits %s %q: want a positive number", opt, v)
		}
		*field = int(n)
		return nil
	})
	if err != nil {
		return err
	}
	return l.Validate()
}
