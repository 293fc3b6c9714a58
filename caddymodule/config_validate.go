package caddymodule

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"golang.org/x/net/http/httpguts"
)

// This file holds what the App and the Gateway check in Validate: every
// option, with an error that names it and its value (never a secret), so
// that a slip in the config stops `caddy run`, `caddy reload` and `/load`
// instead of showing up as 502s, silent defaults or an open app.

// MinDomainRecheckInterval keeps the DNS re-check from spinning: a pass
// runs every min(interval, 1h).
const MinDomainRecheckInterval = time.Minute

// MinSessionKeyLength is the shortest session key accepted, in bytes.
const MinSessionKeyLength = 32

// expander expands the placeholders Caddy knows outside of a request
// ({env.*}, {file.*}, {system.*}) in option values, as Caddy's own modules
// do at provision time.
type expander struct {
	repl *caddy.Replacer
	err  error
}

func newExpander() *expander { return &expander{repl: caddy.NewReplacer()} }

// expand replaces *v by its expansion. A value that expands to nothing is
// an error: `{env.UNSET}` would otherwise quietly mean "use the default"
// (or, for a session key, "no key"). secret keeps the value out of the
// error.
func (e *expander) expand(opt string, v *string, secret bool) {
	if e.err != nil || *v == "" {
		return
	}
	raw := *v
	*v = e.repl.ReplaceKnown(raw, "")
	if *v == "" {
		if secret {
			e.err = fmt.Errorf("%s is empty once its placeholders are expanded; is the environment variable (or file) set?", opt)
		} else {
			e.err = fmt.Errorf("%s %q is empty once its placeholders are expanded; is the environment variable (or file) set?", opt, raw)
		}
	}
}

func (e *expander) expandAll(opt string, vs []string) {
	for i := range vs {
		e.expand(fmt.Sprintf("%s[%d]", opt, i), &vs[i], false)
	}
}

// placeholderRE finds what is left of a placeholder after expansion.
var placeholderRE = regexp.MustCompile(`\{[^{}\s]*\}`)

// noPlaceholder refuses a value that still holds a placeholder Caddy
// could not expand at provision time: it would be used literally.
func noPlaceholder(opt, v string) error {
	if m := placeholderRE.FindString(v); m != "" {
		return fmt.Errorf("%s %q: placeholder %s cannot be expanded here (only {env.*} and {file.*} are)", opt, v, m)
	}
	return nil
}

// checkSessionKey refuses a key that is not a secret: an unexpanded
// placeholder (its text is public), too short, or one of the patterns
// people type when they mean "fill in later". The key never appears in
// the error.
func checkSessionKey(opt, k string) error {
	if k == "" {
		return fmt.Errorf("%s is empty; if it comes from {$VAR} or {env.VAR}, is the variable set?", opt)
	}
	if placeholderRE.MatchString(k) {
		return fmt.Errorf("%s holds a placeholder that was not expanded ({env.NAME} and {file.PATH} are); "+
			"its text would be the key, and it is public", opt)
	}
	if why := weakKey(k); why != "" {
		return fmt.Errorf("%s is not a usable secret: %s; use %d or more random bytes, e.g. the output of `openssl rand -base64 48`",
			opt, why, MinSessionKeyLength)
	}
	return nil
}

// sampleKeyWords are fragments of the sample values docs and configs show
// in place of a key ("<32+ chars>", "change-me-…").
var sampleKeyWords = []string{
	"changeme", "changethis", "replaceme", "replacethis", "example", "sample", "placeholder",
	"yoursecret", "yourkey", "secrethere", "keyhere", "insertkey", "characters", "chars", "todo", "fixme",
}

// weakKey says why k is obviously not a secret, or "" if nothing obvious
// is wrong. It cannot tell a good key from a guessable phrase; it catches
// the slips: too short, few distinct characters, a repeated unit or a
// run, a sample value.
func weakKey(k string) string {
	if len(k) < MinSessionKeyLength {
		return fmt.Sprintf("shorter than %d bytes", MinSessionKeyLength)
	}
	distinct := map[byte]bool{}
	for i := 0; i < len(k); i++ {
		distinct[k[i]] = true
	}
	if len(distinct) < 8 {
		return "too few distinct characters"
	}
	for p := 1; p <= len(k)/2; p++ {
		if k[p:] == k[:len(k)-p] {
			return "a short sequence repeated"
		}
	}
	// A run of 8 characters stepping by the same -1, 0 or +1 ("aaaaaaaa",
	// "12345678", "hgfedcba") is a typed pattern, not randomness.
	for i, run := 2, 1; i < len(k); i++ {
		d := int(k[i]) - int(k[i-1])
		if d >= -1 && d <= 1 && d == int(k[i-1])-int(k[i-2]) {
			run++
			if run >= 7 {
				return "a run of repeated or consecutive characters"
			}
		} else {
			run = 1
		}
	}
	if strings.Contains(k, "<") && strings.Contains(k, ">") {
		return "it looks like a sample value from the docs"
	}
	var norm strings.Builder
	for _, c := range []byte(k) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			norm.WriteByte(c)
		case c >= 'A' && c <= 'Z':
			norm.WriteByte(c + 'a' - 'A')
		}
	}
	for _, w := range sampleKeyWords {
		if strings.Contains(norm.String(), w) {
			return "it looks like a sample value from the docs"
		}
	}
	return ""
}

// checkDuration refuses a negative duration (zero means the default and
// has been replaced by it in Provision) and one below min.
func checkDuration(opt string, d caddy.Duration, minimum time.Duration) error {
	switch {
	case d < 0:
		return fmt.Errorf("%s %s: must be positive (leave it unset for the default)", opt, time.Duration(d))
	case time.Duration(d) < minimum:
		return fmt.Errorf("%s %s: must be at least %s", opt, time.Duration(d), minimum)
	}
	return nil
}

// checkHostPort checks a host:port address with a numeric port.
func checkHostPort(opt, v string) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return fmt.Errorf("%s %q: want host:port: %w", opt, v, err)
	}
	if host == "" || strings.ContainsAny(host, " \t/") {
		return fmt.Errorf("%s %q: want host:port with a host", opt, v)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%s %q: port must be a number from 1 to 65535", opt, v)
	}
	return nil
}

// checkPrefix checks the gateway's route prefix: an absolute, clean path
// of plain characters, so that what the gateway serves is exactly what
// the prefix says and every URL built from it is valid as is.
func checkPrefix(p string) error {
	switch {
	case p == "" || p[0] != '/':
		return fmt.Errorf("prefix %q: must start with /", p)
	case p == "/":
		return fmt.Errorf("prefix %q: must not be / (the gateway's pages would hide the whole app)", p)
	case path.Clean(p) != p:
		return fmt.Errorf("prefix %q: must be a clean path without a trailing slash, e.g. %q", p, path.Clean(p))
	}
	for _, c := range p {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("/-._~", c)) {
			return fmt.Errorf("prefix %q: only letters, digits and / - . _ ~ are allowed", p)
		}
	}
	return nil
}

// checkPathPatterns checks public_paths or protected_paths: Caddy path
// matcher patterns, without placeholders, because those are filled from
// the request and would let a client choose what needs a session.
func checkPathPatterns(opt string, patterns []string) error {
	for i, p := range patterns {
		name := fmt.Sprintf("%s[%d]", opt, i)
		switch {
		case p == "":
			return fmt.Errorf("%s: empty pattern", name)
		case strings.ContainsAny(p, "{}"):
			return fmt.Errorf("%s %q: placeholders are not allowed (they would be filled from the request)", name, p)
		case p[0] != '/' && p[0] != '*':
			return fmt.Errorf("%s %q: a pattern starts with / or *", name, p)
		case strings.ContainsAny(p, "?#"):
			return fmt.Errorf("%s %q: a path pattern has no query or fragment", name, p)
		}
		for _, c := range p {
			if c <= ' ' || c == 0x7f {
				return fmt.Errorf("%s %q: whitespace and control characters are not allowed", name, p)
			}
		}
		if _, err := path.Match(p, "/"); err != nil {
			return fmt.Errorf("%s %q: %w", name, p, err)
		}
	}
	return nil
}

// reservedHeaders are request headers that carry something other than our
// identity, which proxies, servers or the app's own security rely on; an
// identity header by one of these names would break or subvert them.
var reservedHeaders = func() map[string]bool {
	m := map[string]bool{}
	for _, h := range []string{
		// Hop-by-hop (RFC 9110 7.6.1) and framing.
		"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
		"Content-Length", "Expect",
		// Routing, credentials and state.
		"Host", "Authorization", "Cookie", "Set-Cookie", "Www-Authenticate", "Origin", "Referer", "Range",
		// What reverse proxies set about the client.
		"Forwarded", "Via", "X-Real-Ip", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
		"X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Uri", "X-Forwarded-Method", "X-Forwarded-Ssl",
		"X-Forwarded-Server", "X-Http-Method-Override", "X-Requested-With",
	} {
		m[h] = true
	}
	return m
}()

// reservedHeaderPrefixes are reserved families (Sec-Fetch-*, Content-*,
// Proxy-*, If-*, Accept-*, Access-Control-*).
var reservedHeaderPrefixes = []string{"Sec-", "Proxy-", "Content-", "If-", "Accept", "Access-Control-"}

// checkHeaderName checks an identity header name.
func checkHeaderName(opt, name string) error {
	if !httpguts.ValidHeaderFieldName(name) {
		return fmt.Errorf("%s %q: not a valid HTTP header field name", opt, name)
	}
	c := http.CanonicalHeaderKey(name)
	if reservedHeaders[c] {
		return fmt.Errorf("%s %q: reserved for HTTP itself; choose another name (e.g. X-SSO-...)", opt, name)
	}
	for _, p := range reservedHeaderPrefixes {
		if strings.HasPrefix(c, p) {
			return fmt.Errorf("%s %q: names starting with %s are reserved for HTTP itself; choose another name (e.g. X-SSO-...)", opt, name, p)
		}
	}
	return nil
}

// checkHeaders checks the per-field overrides as written and the names
// they resolve to: each a valid, unreserved name, no two fields sharing
// one (the second would overwrite the first).
func checkHeaders(override *HeaderNames, resolved HeaderNames) error {
	if override != nil {
		for i, p := range override.pointers() {
			if v := *p; v != "" && v != "-" {
				if err := checkHeaderName("header "+identityFieldNames[i], v); err != nil {
					return err
				}
			}
		}
	}
	seen := map[string]string{}
	names := resolved.list() // each field, then each field's mirror
	for j, name := range names {
		if name == "" {
			continue
		}
		i := j % identityFields
		opt := "header " + identityFieldNames[i]
		if err := checkHeaderName(opt, name); err != nil {
			return err
		}
		if other, dup := seen[name]; dup {
			return fmt.Errorf("%s %q: already used by header %s; each identity field needs its own header", opt, name, other)
		}
		seen[name] = identityFieldNames[i]
	}
	return nil
}

// errNoBaseURL is the error of a config without base_url.
var errNoBaseURL = errors.New("base_url is required (the URL browsers and IdPs use to reach the gateway)")
