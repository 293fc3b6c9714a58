package local

import (
	"bufio"
	_ "embed"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
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
		set[strings.ToLower(line)] = struct{}{}
	}
	return set
})

// PolicyError says why a password was refused, in words for the person
// choosing it.
type PolicyError struct{ Reason string }

func (e *PolicyError) Error() string { return e.Reason }

// CheckPassword applies the password policy: at least MinPasswordLength
// characters and at most MaxPasswordBytes bytes, not the account's email
// address (or its part before the @), not a common password, and not one
// of those dressed up the usual ways: with digits or symbols added at
// either end, repeated ("qwertyqwerty"), or a run of consecutive keys
// ("abcdefghijkl"). Comparisons ignore case. Length rules come first
// because they are what a person can act on most easily.
//
// The rules follow NIST SP 800-63B §5.1.1.2: length and a blocklist, no
// composition rules (which push people to predictable substitutions).
func CheckPassword(password, email string) error {
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
	lower := strings.ToLower(password)
	email = strings.ToLower(strings.TrimSpace(email))
	localPart, _, _ := strings.Cut(email, "@")
	common := commonPasswords()
	for _, c := range variants(lower) {
		if c == "" {
			continue
		}
		if c == email || c == localPart {
			return &PolicyError{"The password must not be your email address."}
		}
		if _, ok := common[c]; ok {
			return &PolicyError{"This password is too common: it is on lists attackers try first. Choose something less predictable."}
		}
	}
	if distinctRunes(lower) < 4 || isRun(lower) {
		return &PolicyError{"This password is too simple: it repeats a few characters or runs along the keyboard. Choose something less predictable."}
	}
	return nil
}

// variants are the forms of a lower-cased password checked against the
// email address and the list: itself, without digits and symbols at its
// ends, and the unit it repeats, if it is a repetition.
func variants(p string) []string {
	isPad := func(r rune) bool {
		return unicode.IsDigit(r) || unicode.IsPunct(r) || unicode.IsSymbol(r) || unicode.IsSpace(r)
	}
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
