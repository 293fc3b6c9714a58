package scim

import (
	"errors"
	"fmt"
)

// Limits caps what one organization's SCIM client can make the gateway
// parse, keep and send back. A SCIM token is held by a tenant, not by the
// operator, so every cap below is one tenant's budget: whatever it sends,
// the other tenants keep their memory, CPU and stack. Zero values take the
// defaults; a request over a cap is refused with a SCIM error and changes
// nothing.
//
// The defaults leave room for what Okta and Entra ID send (see
// flows_test.go) with a wide margin, and keep the worst requests one
// tenant can have in flight at once to tens of MiB.
type Limits struct {
	// Largest request body, in bytes. The largest legitimate one is a
	// group membership update listing many members (about 40 to 70 bytes
	// each as the IdPs send them): 1 MiB holds 15,000 to 25,000, and the
	// IdPs send membership changes in batches well below that. Decoding
	// and validating a body costs some 30 times its size. Default: 1 MiB.
	MaxRequestBytes int64 `json:"max_request_size,omitempty"`

	// Longest request path plus query, in bytes. Default: 8192 (the
	// length RFC 9110 §4.1 recommends supporting). Longer URLs than the
	// HTTP server's header limit (Caddy's max_header_size, 1 MiB by
	// default) are refused by the server before the gateway sees them.
	MaxURLLength int `json:"max_url_length,omitempty"`

	// Longest filter, PATCH path or attribute list, in bytes. The filter
	// parser is recursive, so this and MaxFilterDepth are checked before
	// it runs. The IdPs send single equalities (`userName eq "…"`) and
	// Entra ID's membership probe (`id eq "…" and members[value eq "…"]`);
	// 4 KiB also allows an or-chain of some 80 ids. Default: 4096.
	MaxFilterLength int `json:"max_filter_length,omitempty"`

	// Deepest nesting of parentheses and brackets in a filter or PATCH
	// path. Default: 16; at most 64.
	MaxFilterDepth int `json:"max_filter_depth,omitempty"`

	// Deepest nesting of objects and arrays in a JSON body. A SCIM body
	// needs 6 (PATCH → Operations → operation → value → members → member).
	// Default: 32; at most 128.
	MaxJSONDepth int `json:"max_json_depth,omitempty"`

	// Longest string attribute value, in bytes (userName and email
	// addresses are held to 254, RFC 5321's longest address). Default:
	// 1024.
	MaxStringLength int `json:"max_string_length,omitempty"`

	// Most values of a multi-valued attribute of a user (emails,
	// phoneNumbers, addresses, roles, …). Default: 100.
	MaxMultiValued int `json:"max_multi_valued,omitempty"`

	// Largest user, or group without its members, as returned, in bytes.
	// A full Okta or Entra ID user is under 2 KiB. Default: 64 KiB.
	MaxResourceBytes int `json:"max_resource_size,omitempty"`

	// A list response stops adding resources once it holds this many
	// bytes (itemsPerPage then says how many it holds, and the IdP asks
	// for the next page from there, RFC 7644 §3.4.2.4). A single
	// resource is always sent, however large. Default: 2 MiB.
	MaxPageBytes int `json:"max_page_size,omitempty"`

	// Most members of one group. Each change to a group rewrites its
	// member list, about 40 bytes per member, and a group returned with
	// its members costs about 110 bytes per member: 50,000 members make
	// a 2 MiB record and a 5.5 MiB response. Larger populations are
	// better given access through several groups. Default: 50000.
	MaxGroupMembers int `json:"max_group_members,omitempty"`

	// Most users and groups of one organization (all sources).
	// Defaults: 100000 users, 20000 groups.
	MaxUsers  int `json:"max_users,omitempty"`
	MaxGroups int `json:"max_groups,omitempty"`

	// Most bytes one organization's users and groups may occupy in the
	// store: records, indexes, memberships and the markers of
	// deprovisioned users (store.StoredBytes; Badger's own overhead comes
	// on top). Without it the caps above multiply out to some 6 GiB of
	// users (max_users × max_resource_size) and far more in memberships
	// (max_groups × max_group_members). A full Okta or Entra ID user
	// takes about 1.5 KiB with its indexes, a membership about 130
	// bytes: 100,000 users of 2 KiB in a million memberships make some
	// 320 MiB, and the default leaves three times that. A create,
	// replace or PATCH that would go past it gets 403; deletions,
	// changes that shrink and deactivations (which add a few bytes) are
	// always accepted. Requests in flight at the same moment may
	// together overshoot it by what they add.
	// Default: 1 GiB.
	MaxStoredBytes int64 `json:"max_stored_bytes,omitempty"`

	// Most requests of one organization processed at once, of which one
	// heavy one (anything on /Groups, or a body over 64 KiB); more wait
	// their turn (up to 30 s, at most 8 × this many waiting; beyond that
	// they get 429 with Retry-After). Bounds the memory one tenant's
	// parallel requests hold: a heavy request (a PATCH of the largest
	// body, a read of the largest group) holds some 50 MiB while it runs,
	// a light one a few. The IdPs' provisioning sends a few requests at a
	// time and waits for each; queued requests only wait a little longer.
	// Default: 4.
	MaxConcurrent int `json:"max_concurrent,omitempty"`
}

// Defaults of Limits.
const (
	DefaultMaxRequestBytes  = 1 << 20
	DefaultMaxURLLength     = 8192
	DefaultMaxFilterLength  = 4096
	DefaultMaxFilterDepth   = 16
	DefaultMaxJSONDepth     = 32
	DefaultMaxStringLength  = 1024
	DefaultMaxMultiValued   = 100
	DefaultMaxResourceBytes = 64 << 10
	DefaultMaxPageBytes     = 1 << 20
	DefaultMaxGroupMembers  = 50_000
	DefaultMaxUsers         = 100_000
	DefaultMaxGroups        = 20_000
	DefaultMaxStoredBytes   = 1 << 30
	DefaultMaxConcurrent    = 4

	// maxEmailLength is RFC 5321's longest forward path less its angle
	// brackets; it also holds for userName, which sign-in matches
	// against the asserted email address.
	maxEmailLength = 254

	// Ceilings on what an operator may set: above these, the recursive
	// parsers behind the caps are back within reach.
	ceilFilterDepth  = 64
	ceilFilterLength = 64 << 10
	ceilJSONDepth    = 128
	// A group's deletion removes all its memberships in one store
	// transaction, and Badger's holds about 10 MB of keys: some 78,000
	// memberships with the longest organization IDs. Past this ceiling a
	// group could grow too large to delete.
	ceilGroupMembers = 60_000
)

// WithDefaults returns l with zero values replaced by the defaults.
func (l Limits) WithDefaults() Limits {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	if l.MaxRequestBytes == 0 {
		l.MaxRequestBytes = DefaultMaxRequestBytes
	}
	def(&l.MaxURLLength, DefaultMaxURLLength)
	def(&l.MaxFilterLength, DefaultMaxFilterLength)
	def(&l.MaxFilterDepth, DefaultMaxFilterDepth)
	def(&l.MaxJSONDepth, DefaultMaxJSONDepth)
	def(&l.MaxStringLength, DefaultMaxStringLength)
	def(&l.MaxMultiValued, DefaultMaxMultiValued)
	def(&l.MaxResourceBytes, DefaultMaxResourceBytes)
	def(&l.MaxPageBytes, DefaultMaxPageBytes)
	def(&l.MaxGroupMembers, DefaultMaxGroupMembers)
	def(&l.MaxUsers, DefaultMaxUsers)
	def(&l.MaxGroups, DefaultMaxGroups)
	def(&l.MaxConcurrent, DefaultMaxConcurrent)
	if l.MaxStoredBytes == 0 {
		l.MaxStoredBytes = DefaultMaxStoredBytes
	}
	return l
}

// Validate refuses negative values and values that would put the
// recursive parsers back within a tenant's reach. It checks l as given
// (zero means default).
func (l Limits) Validate() error {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"max_request_size", l.MaxRequestBytes},
		{"max_url_length", int64(l.MaxURLLength)},
		{"max_filter_length", int64(l.MaxFilterLength)},
		{"max_filter_depth", int64(l.MaxFilterDepth)},
		{"max_json_depth", int64(l.MaxJSONDepth)},
		{"max_string_length", int64(l.MaxStringLength)},
		{"max_multi_valued", int64(l.MaxMultiValued)},
		{"max_resource_size", int64(l.MaxResourceBytes)},
		{"max_page_size", int64(l.MaxPageBytes)},
		{"max_group_members", int64(l.MaxGroupMembers)},
		{"max_users", int64(l.MaxUsers)},
		{"max_groups", int64(l.MaxGroups)},
		{"max_concurrent", int64(l.MaxConcurrent)},
		{"max_stored_bytes", l.MaxStoredBytes},
	} {
		if f.v < 0 {
			return fmt.Errorf("%s %d: must not be negative (0 means the default)", f.name, f.v)
		}
	}
	switch {
	case l.MaxFilterDepth > ceilFilterDepth:
		return fmt.Errorf("max_filter_depth %d: at most %d", l.MaxFilterDepth, ceilFilterDepth)
	case l.MaxFilterLength > ceilFilterLength:
		return fmt.Errorf("max_filter_length %d: at most %d", l.MaxFilterLength, ceilFilterLength)
	case l.MaxGroupMembers > ceilGroupMembers:
		return fmt.Errorf("max_group_members %d: at most %d (a group's deletion is one store transaction)", l.MaxGroupMembers, ceilGroupMembers)
	case l.MaxJSONDepth > ceilJSONDepth:
		return fmt.Errorf("max_json_depth %d: at most %d", l.MaxJSONDepth, ceilJSONDepth)
	case l.MaxJSONDepth != 0 && l.MaxJSONDepth < 8:
		return errors.New("max_json_depth: at least 8, or PATCH requests of the IdPs are refused")
	}
	return nil
}
