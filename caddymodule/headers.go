package caddymodule

import (
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"

	"github.com/ssogate/ssogate/caddymodule/upstreamjwt"
)

// HeaderNames are the request headers that carry the signed-in identity to
// the upstream. An empty name leaves that header out.
type HeaderNames struct {
	UserID     string `json:"user_id,omitempty"`
	User       string `json:"user,omitempty"`
	Email      string `json:"email,omitempty"`
	Name       string `json:"name,omitempty"`
	Groups     string `json:"groups,omitempty"`
	Org        string `json:"org,omitempty"`
	AuthMethod string `json:"auth_method,omitempty"`
	// The IdP's identifier of the user (see identity.Subject).
	Subject string `json:"subject,omitempty"`

	// mirror holds, per field, a second name the same value goes out
	// under (the oauth2-proxy preset's X-Auth-Request-* names), or "".
	mirror [identityFields]string
}

// identityFieldNames are the JSON and Caddyfile names of the HeaderNames
// fields, in identityFields order.
var identityFieldNames = [identityFields]string{"user_id", "user", "email", "name", "groups", "org", "auth_method", "subject"}

// field returns the HeaderNames field called name (see
// identityFieldNames), or nil.
func (h *HeaderNames) field(name string) *string {
	fields := h.pointers()
	for i, n := range identityFieldNames {
		if strings.ToLower(name) == n {
			return fields[i]
		}
	}
	return nil
}

func (h *HeaderNames) pointers() [identityFields]*string {
	return [...]*string{&h.UserID, &h.User, &h.Email, &h.Name, &h.Groups, &h.Org, &h.AuthMethod, &h.Subject}
}

// Header presets.
const (
	PresetDefault     = "default"
	PresetOAuth2Proxy = "oauth2-proxy"
)

var presets = map[string]HeaderNames{
	PresetDefault: {
		UserID:     "X-SSO-User-Id",
		User:       "X-SSO-User",
		Email:      "X-SSO-Email",
		Name:       "X-SSO-Name",
		Groups:     "X-SSO-Groups",
		Org:        "X-SSO-Org",
		AuthMethod: "X-SSO-Auth-Method",
		Subject:    "X-SSO-Subject",
	},
	// Apps written for oauth2-proxy read these, with oauth2-proxy's
	// meanings: X-Forwarded-User is the IdP's identifier of the user (its
	// `user`, an OIDC `sub`), not ssogate's id, qualified by the org
	// since one app serves many IdPs; X-Forwarded-* is what
	// oauth2-proxy passes upstream (--pass-user-headers), X-Auth-Request-*
	// what it answers nginx's auth_request with (--set-xauthrequest),
	// which nginx set-ups forward under the same names. What oauth2-proxy
	// has no header for keeps our name.
	PresetOAuth2Proxy: {
		UserID:     "X-SSO-User-Id",
		User:       "X-Forwarded-Preferred-Username",
		Email:      "X-Forwarded-Email",
		Name:       "X-SSO-Name",
		Groups:     "X-Forwarded-Groups",
		Org:        "X-SSO-Org",
		AuthMethod: "X-SSO-Auth-Method",
		Subject:    "X-Forwarded-User",
		mirror: [identityFields]string{
			1: "X-Auth-Request-Preferred-Username",
			2: "X-Auth-Request-Email",
			4: "X-Auth-Request-Groups",
			7: "X-Auth-Request-User",
		},
	},
}

// resolveHeaders applies overrides to a preset.
func resolveHeaders(preset string, override *HeaderNames) (HeaderNames, bool) {
	if preset == "" {
		preset = PresetDefault
	}
	h, ok := presets[preset]
	if !ok {
		return HeaderNames{}, false
	}
	if override != nil {
		src := override.pointers()
		for i, dst := range h.pointers() {
			switch v := *src[i]; v {
			case "":
				continue
			case "-":
				*dst = ""
			default:
				*dst = v
			}
			// An overridden field goes out under the name given, and
			// only that one.
			h.mirror[i] = ""
		}
	}
	// Canonical names let apply set headers without canonicalizing (and
	// allocating) on every request.
	for i, p := range h.pointers() {
		*p = http.CanonicalHeaderKey(*p)
		h.mirror[i] = http.CanonicalHeaderKey(h.mirror[i])
	}
	return h, true
}

// list is every name the identity goes out under, mirrors included.
func (h HeaderNames) list() []string {
	a := h.array()
	return append(a[:], h.mirror[:]...)
}

// DefaultJWTHeader carries the signed identity (signed_identity).
const DefaultJWTHeader = "X-SSO-JWT"

// strippedHeaders is every header name any configuration could use for
// identity, so that a client can never supply one the upstream trusts,
// whatever preset the upstream was written for; extra are further names
// this site uses (its signed identity header).
func strippedHeaders(configured HeaderNames, extra ...string) []string {
	seen := map[string]bool{}
	var out []string
	add := func(names []string) {
		for _, n := range names {
			if n == "" {
				continue
			}
			c := http.CanonicalHeaderKey(n)
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	add(configured.list())
	for _, p := range presets {
		add(p.list())
	}
	add([]string{DefaultJWTHeader})
	add(extra)
	return out
}

// identity is what the gateway tells the upstream about the user.
type identity struct {
	UserID, User, Email, Name, Org, AuthMethod string
	Groups                                     []string
	// Subject is the IdP's identifier of the user, what oauth2-proxy
	// sends as X-Forwarded-User, qualified by the org: "<org>/<id>", with
	// the IdP's object ID (SCIM externalId or the objectidentifier
	// attribute) when known, else the SAML NameID of the sign-in; for
	// local accounts, which no IdP knows, ssogate's user id. Unique
	// across orgs (see subjectOf).
	Subject string
}

// identityFields is the number of identity values; HeaderNames.array,
// identity.values and replKeys list them in the same order.
const identityFields = 8

// replKeys are the placeholders apply sets, in identityFields order.
// replPrefix starts every key of replKeys.
const replPrefix = "http.auth.user."

var replKeys = [identityFields]string{
	"http.auth.user.id", "http.auth.user.username", "http.auth.user.email", "http.auth.user.name",
	"http.auth.user.groups", "http.auth.user.org", "http.auth.user.auth_method", "http.auth.user.subject",
}

func (h HeaderNames) array() [identityFields]string {
	return [...]string{h.UserID, h.User, h.Email, h.Name, h.Groups, h.Org, h.AuthMethod, h.Subject}
}

// identityValues is an identity made ready for apply once per re-check:
// the header values made header-safe and the placeholder values boxed, so
// that the requests reusing a re-check (see recheckCache) share them
// read-only instead of converting again.
type identityValues struct {
	header [identityFields]string
	repl   [identityFields]any
	// placeholders answers the {http.auth.user.*} placeholders from repl
	// (see apply).
	placeholders caddy.ReplacerFunc

	// For signed_identity: the claims, and the last token minted from
	// them (see Gateway.signedToken).
	jwtIdentity upstreamjwt.Identity
	jwt         atomic.Pointer[mintedJWT]
}

func (id identity) values() *identityValues {
	raw := [...]string{id.UserID, single(id.User), single(id.Email), id.Name, joinGroups(id.Groups), id.Org, id.AuthMethod, single(id.Subject)}
	v := &identityValues{jwtIdentity: id.jwtIdentity()}
	for i, s := range raw {
		v.header[i] = headerSafe(s)
		v.repl[i] = s
	}
	v.placeholders = func(key string) (any, bool) {
		if !strings.HasPrefix(key, replPrefix) {
			return nil, false
		}
		for i, k := range replKeys {
			if k == key {
				return v.repl[i], true
			}
		}
		return nil, false
	}
	return v
}

// single drops a user name or address that contains a comma. Sign-in,
// SCIM and local accounts accept none (identity.ParseEmail), but an
// upstream reading a header as an HTTP list would take the part before
// the comma for the whole, so a record from before those checks is not
// passed on at all rather than passed on as someone else.
func single(s string) string {
	if strings.ContainsRune(s, ',') {
		return ""
	}
	return s
}

// joinGroups writes the groups as one comma-separated list. The group
// names themselves may contain commas ("Sales, EMEA"), so each name's '%'
// and ',' are percent-encoded ("Sales%2C EMEA"): splitting on commas
// always yields the asserted names, never a name the user was not given.
func joinGroups(groups []string) string {
	var b strings.Builder
	for i, g := range groups {
		if i > 0 {
			b.WriteByte(',')
		}
		if !strings.ContainsAny(g, "%,") {
			b.WriteString(g)
			continue
		}
		for j := 0; j < len(g); j++ {
			switch g[j] {
			case '%':
				b.WriteString("%25")
			case ',':
				b.WriteString("%2C")
			default:
				b.WriteByte(g[j])
			}
		}
	}
	return b.String()
}

// apply sets the identity headers and the {http.auth.user.*} placeholders
// that access logs and other directives read. The names are canonical
// (resolveHeaders), so they go into the header map as they are.
//
// This runs on every request, so it allocates once: the header values
// share one backing array, each capped at its length so that a handler
// appending to one gets a copy rather than overwriting the next; and the
// placeholders come from v's provider function, appended to the
// request's replacer, instead of eight insertions into its map. The
// same names set earlier (by another authentication handler) are deleted
// first, so they resolve to the gateway's values, as when it set them.
func (h HeaderNames) apply(r *http.Request, v *identityValues) {
	vals := make([]string, 0, 2*identityFields)
	for i, name := range h.array() {
		if name != "" && v.header[i] != "" {
			vals = append(vals, v.header[i])
			n := len(vals)
			r.Header[name] = vals[n-1 : n : n]
			if m := h.mirror[i]; m != "" {
				// An element of its own: a handler that edits one
				// header's values in place must not edit the other.
				vals = append(vals, v.header[i])
				r.Header[m] = vals[n : n+1 : n+1]
			}
		}
	}
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		for _, k := range replKeys {
			repl.Delete(k)
		}
		repl.Map(v.placeholders)
	}
}

// headerSafe replaces control characters, which an IdP could put in a
// display name and which would make the header invalid (or worse, split).
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
