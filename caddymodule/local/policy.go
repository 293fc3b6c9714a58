package local

import (
	"bufio"
	_ "embed"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/ssogate/ssogate/identity"
)

// MinPasswordLength is the shortest password accepted, in characters.
const MinPasswordLength = 12

//go:embed common-passwords.txt
var commonPasswordsText string

// commonPasswords is the embedded list as a set, built on first use and
// never changed after.
var commonPasswords = sync.OnceValue(func() map[string]struct{} {
	set := make(map[string]struct{}, 600)
	sc := bufio.NewScanner(strings.NewReader(commonPasswordsText))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		set[asciiLower(line)] = struct{}{}
	}
	return set
})

// PolicyError says why a password was refused, in words for the person
// choosing it.
type PolicyError struct{ Reason string }

func (e *PolicyError) Error() string { return e.Reason }

// PasswordContext is what a password must not be made of: the words an
// attacker who targets this account tries first (NIST SP 800-63B
// §5.1.1.2: "context-specific words, such as the name of the service, the
// username, and derivatives thereof").
type PasswordContext struct {
	Email   string // the account's address
	OrgID   string
	OrgName string
}

// minRemainder is how many characters a password must keep once the
// context's words are taken out of it, so that "acme-corp-2024!" for the
// org Acme Corp is refused while a passphrase that merely mentions it is
// not.
const minRemainder = 6

// CheckPassword applies the password policy: at least MinPasswordLength
// characters and at most MaxPasswordBytes bytes; not a common password,
// nor one of those dressed up the usual ways (digits or symbols added at
// either end, repeated as in "qwertyqwerty"); not a run of consecutive
// keys ("abcdefghijkl"); and not made of the context's words: the
// account's address, its local part and domain and their words, the
// organization's ID and name, with only a few characters added (fewer
// than minRemainder, or a common password). Comparisons fold ASCII case
// only. Length rules come first because they are what a person can act
// on most easily.
//
// The rules follow NIST SP 800-63B §5.1.1.2: length and a blocklist, no
// composition rules (which push people to predictable substitutions).
func CheckPassword(password string, pc PasswordContext) error {
	n := utf8.RuneCountInString(password)
	switch {
	case !utf8.ValidString(password):
		return &PolicyError{"The password contains invalid characters."}
	case n < MinPasswordLength:
		return &PolicyError{"Use at least 12 characters. A few unrelated words make a long password that is easy to remember."}
	case len(password) > MaxPasswordBytes:
		return &PolicyError{"The password is too long (at most 1024 bytes)."}
	}
	for _, r := range password {
		if unicode.IsControl(r) {
			return &PolicyError{"The password must not contain control characters."}
		}
	}
	lower := asciiLower(password)
	emailWords, orgWords := pc.words()
	if madeOf(lower, emailWords) {
		return &PolicyError{"The password must not be your email address or be made from it."}
	}
	if madeOf(lower, append(emailWords, orgWords...)) {
		return &PolicyError{"The password must not be your organization's name or ID or be made from it."}
	}
	common := commonPasswords()
	for _, c := range variants(lower) {
		if _, ok := common[c]; ok && c != "" {
			return &PolicyError{"This password is too common: it is on lists attackers try first. Choose something less predictable."}
		}
	}
	if distinctRunes(lower) < 4 || isRun(lower) {
		return &PolicyError{"This password is too simple: it repeats a few characters or runs along the keyboard. Choose something less predictable."}
	}
	return nil
}

// words returns the context's words, ASCII-lower-cased: the address, its
// local part and domain, their words and the domain's labels but the last
// (a top-level domain is no context); the org's ID and name, their words
// and their letters and digits run together.
func (pc PasswordContext) words() (email, org []string) {
	addr := asciiLower(strings.TrimSpace(pc.Email))
	email = []string{addr}
	if at := strings.LastIndexByte(addr, '@'); at >= 0 {
		localPart, domain := addr[:at], addr[at+1:]
		email = append(email, localPart, domain)
		email = append(email, fieldsAndJoined(localPart)...)
		if labels := strings.Split(domain, "."); len(labels) > 1 {
			email = append(email, labels[:len(labels)-1]...)
		}
	}
	for _, s := range []string{pc.OrgID, pc.OrgName} {
		s = asciiLower(strings.TrimSpace(s))
		org = append(org, s)
		org = append(org, fieldsAndJoined(s)...)
	}
	return email, org
}

// fieldsAndJoined splits s into its runs of letters and digits, and adds
// them run together ("acme corp." → "acme", "corp", "acmecorp").
func fieldsAndJoined(s string) []string {
	f := strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	if len(f) > 1 {
		f = append(f, strings.Join(f, ""))
	}
	return f
}

// madeOf reports whether the lower-cased password p is one of words, or
// is little more than them: once every word of three characters or more
// is taken out, what remains, without digits and symbols at its ends, is
// shorter than minRemainder or a common password.
func madeOf(p string, words []string) bool {
	for _, v := range variants(p) {
		for _, w := range words {
			if w != "" && v == w {
				return true
			}
		}
	}
	long := make([]string, 0, len(words))
	for _, w := range words {
		if len(w) >= 3 {
			long = append(long, w)
		}
	}
	// Longest first, so that "acmecorp" goes as a whole before "acme".
	slices.SortFunc(long, func(a, b string) int { return len(b) - len(a) })
	rest := p
	for _, w := range long {
		rest = strings.ReplaceAll(rest, w, "")
	}
	if rest == p {
		return false
	}
	rest = strings.TrimFunc(rest, isPad)
	if utf8.RuneCountInString(rest) < minRemainder {
		return true
	}
	_, common := commonPasswords()[rest]
	return common
}

// asciiLower lower-cases ASCII letters only: identities are never
// compared with Unicode case folding.
func asciiLower(s string) string { return identity.Fold(s) }

func isPad(r rune) bool {
	return unicode.IsDigit(r) || unicode.IsPunct(r) || unicode.IsSymbol(r) || unicode.IsSpace(r)
}

// variants are the forms of a lower-cased password checked against the
// email address and the list: itself, without digits and symbols at its
// ends, and the unit it repeats, if it is a repetition.
func variants(p string) []string {
	out := []string{p, strings.TrimRightFunc(p, isPad), strings.TrimFunc(p, isPad)}
	for _, v := range out[:3] {
		if u := repeatedUnit(v); u != "" {
			out = append(out, u, strings.TrimFunc(u, isPad))
		}
	}
	return out
}

// repeatedUnit returns u if s is u repeated at least twice, else "".
func repeatedUnit(s string) string {
	for size := 1; size <= len(s)/2; size++ {
		if len(s)%size == 0 && strings.Repeat(s[:size], len(s)/size) == s {
			return s[:size]
		}
	}
	return ""
}

func distinctRunes(s string) int {
	seen := map[rune]struct{}{}
	for _, r := range s {
		seen[r] = struct{}{}
	}
	return len(seen)
}

// isRun reports whether every character is the previous one plus one, or
// every one is the previous minus one ("abcdefghijkl", "987654321098"
// is not a run but is on the list).
func isRun(s string) bool {
	rs := []rune(s)
	if len(rs) < 3 {
		return false
	}
	step := rs[1] - rs[0]
	if step != 1 && step != -1 {
		return false
	}
	for i := 2; i < len(rs); i++ {
		if rs[i]-rs[i-1] != step {
			return false
		}
	}
	return true
}
