// Package identity is the one rule by which ssogate reads, compares and
// indexes the names that identify people and groups: email addresses,
// userNames and group names, whether they arrive in a SAML assertion,
// over SCIM, from a local-account form or from the store.
//
// Case is ignored for ASCII letters only. Unicode case folding
// (strings.ToLower, strings.EqualFold) is never used on an identity: it
// maps distinct characters onto ASCII letters (U+212A KELVIN SIGN onto k,
// U+017F LONG S onto s), so that a name chosen by one person would meet
// another person's. Domains are compared in their IDNA A-label form, the
// form DNS and domain verification use.
//
// It is a top-level package, not part of caddymodule, because the store
// builds its indexes with it and the store imports nothing of caddymodule.
package identity

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Length bounds of an address (RFC 5321 §4.5.3.1: a path holds at most
// 256 octets including the angle brackets, a local part at most 64).
const (
	MaxEmailLength  = 254
	MaxLocalLength  = 64
	MaxDomainLength = 253
)

// ErrEmail is wrapped by every error ParseEmail returns.
var ErrEmail = errors.New("not a single email address")

// Fold lower-cases the ASCII letters of s and leaves every other byte as
// it is. It is the matching form of userNames and group names.
func Fold(s string) string {
	i := 0
	for i < len(s) && !isUpper(s[i]) {
		i++
	}
	if i == len(s) {
		return s
	}
	b := []byte(s)
	for ; i < len(b); i++ {
		if isUpper(b[i]) {
			b[i] += 'a' - 'A'
		}
	}
	return string(b)
}

// EqualFold reports whether a and b are equal with ASCII letters compared
// case-insensitively; every other byte must be equal.
func EqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if isUpper(x) {
			x += 'a' - 'A'
		}
		if isUpper(y) {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }

// ParseEmail accepts exactly one bare address (an RFC 5322 addr-spec in
// its dot-atom form) and returns its canonical form: the local part as
// given, the domain as a lower-case IDNA A-label. It refuses everything
// an upstream application or mail system could read as more than one
// address or as something else: a second '@', whitespace, control and
// format characters, commas, quotes, comments, angle brackets, an IP
// literal, a domain that is not a host name. s is not trimmed.
func ParseEmail(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("empty address: %w", ErrEmail)
	}
	if len(s) > MaxEmailLength {
		return "", fmt.Errorf("address is %d bytes long, at most %d are allowed: %w", len(s), MaxEmailLength, ErrEmail)
	}
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("address is not valid UTF-8: %w", ErrEmail)
	}
	at := strings.IndexByte(s, '@')
	if at < 0 {
		return "", fmt.Errorf("address has no '@': %w", ErrEmail)
	}
	if strings.IndexByte(s[at+1:], '@') >= 0 {
		return "", fmt.Errorf("address has more than one '@': %w", ErrEmail)
	}
	local, domain := s[:at], s[at+1:]
	if err := checkLocal(local); err != nil {
		return "", err
	}
	d, err := Domain(domain)
	if err != nil {
		return "", err
	}
	return local + "@" + d, nil
}

// checkLocal accepts a dot-atom local part: atext runs joined by single
// dots. Beyond ASCII (RFC 6531) it admits letters, marks and digits only,
// so that no space, control, format (bidi override, zero-width) or
// punctuation character of another script slips in.
func checkLocal(l string) error {
	if l == "" {
		return fmt.Errorf("address has nothing before the '@': %w", ErrEmail)
	}
	if len(l) > MaxLocalLength {
		return fmt.Errorf("the part before the '@' is %d bytes long, at most %d are allowed: %w", len(l), MaxLocalLength, ErrEmail)
	}
	if l[0] == '.' || l[len(l)-1] == '.' || strings.Contains(l, "..") {
		return fmt.Errorf("the part before the '@' has a misplaced dot: %w", ErrEmail)
	}
	for _, r := range l {
		if r < utf8.RuneSelf {
			if r != '.' && !isAtext(byte(r)) {
				return fmt.Errorf("the part before the '@' contains %q: %w", r, ErrEmail)
			}
			continue
		}
		if !unicode.IsLetter(r) && !unicode.IsMark(r) && !unicode.IsDigit(r) {
			return fmt.Errorf("the part before the '@' contains %U: %w", r, ErrEmail)
		}
	}
	return nil
}

// isAtext is RFC 5322 atext, the characters of a dot-atom besides the dot.
// It has no space, comma, semicolon, quote, parenthesis, angle bracket,
// backslash or '@'.
func isAtext(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// Domain returns the lower-case IDNA A-label form of a host name (the
// Lookup profile of UTS #46, which is also what browsers and resolvers
// apply), or an error when d is not a host name of at least two labels.
func Domain(d string) (string, error) {
	if d == "" {
		return "", fmt.Errorf("address has no domain after the '@': %w", ErrEmail)
	}
	if len(d) > 4*MaxDomainLength {
		return "", fmt.Errorf("domain is too long: %w", ErrEmail)
	}
	a, err := idna.Lookup.ToASCII(d)
	if err != nil {
		return "", fmt.Errorf("the domain is not a valid host name: %w", ErrEmail)
	}
	a = Fold(a)
	// The A-label form must itself be accepted, unchanged: a name whose
	// Unicode form passes but whose A-labels do not (a label mixing
	// right-to-left and other scripts that the mapping produced) would
	// have a canonical form that is refused the next time it is read.
	if again, err := idna.Lookup.ToASCII(a); err != nil || again != a {
		return "", fmt.Errorf("the domain is not a valid host name: %w", ErrEmail)
	}
	if len(a) > MaxDomainLength {
		return "", fmt.Errorf("domain is %d bytes long, at most %d are allowed: %w", len(a), MaxDomainLength, ErrEmail)
	}
	labels := strings.Split(a, ".")
	if len(labels) < 2 {
		return "", fmt.Errorf("the domain is a single label, not a full domain name: %w", ErrEmail)
	}
	for _, l := range labels {
		if !hostLabel(l) {
			return "", fmt.Errorf("the domain is not a valid host name: %w", ErrEmail)
		}
	}
	if allDigits(labels[len(labels)-1]) {
		return "", fmt.Errorf("the domain is an IP address, not a host name: %w", ErrEmail)
	}
	return a, nil
}

// hostLabel checks an A-label: letters, digits and inner hyphens, 1 to 63
// bytes. The IDNA profile checks most of this already; what reaches a
// header, a DNS query or an index key is checked here in plain terms.
func hostLabel(l string) bool {
	if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// EmailDomain returns the canonical domain of a valid address, or "".
func EmailDomain(email string) string {
	e, err := ParseEmail(email)
	if err != nil {
		return ""
	}
	return e[strings.IndexByte(e, '@')+1:]
}

// Key is the matching form of a userName or an email address, the form
// the store indexes them under: for a valid address, its canonical form
// with the local part's ASCII letters lower-cased; for anything else
// (a login name without '@', or a record from before addresses were
// checked), s with its ASCII letters lower-cased. Two values match when
// their keys are equal.
func Key(s string) string {
	if e, err := ParseEmail(s); err == nil {
		return Fold(e)
	}
	return Fold(s)
}

// SameEmail reports whether a and b are the same address under Key.
func SameEmail(a, b string) bool { return Key(a) == Key(b) }
