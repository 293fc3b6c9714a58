package local

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckPassword(t *testing.T) {
	const email = "Alice.Admin@Example.com"
	pc := PasswordContext{Email: email, OrgID: "acme-corp", OrgName: "Acme Widgets"}
	accept := []string{
		"correct horse battery",
		"Tr0ub4dor&3-xylophone",
		"paper lantern of 1987",
		"ünïcödé-pässwörd",
		"zq8#Lm2!vR9@",
		strings.Repeat("ab1", 4) + "xyz", // a repetition plus more is fine
		"alice in wonderland",            // a context word in a real passphrase
		"acme widgets make my day 42",
	}
	for _, pw := range accept {
		if err := CheckPassword(pw, pc); err != nil {
			t.Errorf("%q refused: %v", pw, err)
		}
	}
	refuse := map[string]string{
		"":                           "at least 12",
		"short":                      "at least 12",
		"elevenchars":                "at least 12",
		"alice.admin@example.com":    "email",
		"ALICE.ADMIN@EXAMPLE.COM":    "email",
		"alice.admin2024!":           "email",
		"Example.com2024":            "email",
		"EXAMPLE-example!":           "email",
		"aliceadmin!2024":            "email",
		"Alice Admin 2024":           "email",
		"Acme-Corp-2024!":            "organization",
		"acmecorp12345":              "organization",
		"ACME WIDGETS 2024":          "organization",
		"acmewidgets!!!":             "organization",
		"acme widgets password":      "organization",
		"AcmeWidgetsAcmeWidgets":     "organization",
		"password1234":               "common",
		"Password1234!":              "common",
		"!!password!!":               "common",
		"qwertyqwerty":               "common",
		"QwertyQwerty":               "common",
		"iloveyouiloveyou":           "common",
		"123456789012":               "common",
		"letmein12345":               "common",
		"welcome!2026":               "common",
		"aaaaaaaaaaaa":               "common",
		"abababababab":               "simple",
		"abcdefghijklm":              "simple",
		"zyxwvutsrqpon":              "simple",
		"line\nbreak-in-password":    "control",
		strings.Repeat("x", 1025):    "too long",
		"bad utf8 \xff\xfe\xfd here": "invalid",
	}
	for pw, why := range refuse {
		err := CheckPassword(pw, pc)
		var pe *PolicyError
		if !errors.As(err, &pe) {
			t.Errorf("%q accepted (want refusal: %s)", pw, why)
			continue
		}
		if !strings.Contains(strings.ToLower(pe.Reason), why) {
			t.Errorf("%q: reason %q, want it to mention %q", pw, pe.Reason, why)
		}
	}
}

func TestCommonPasswordListLoaded(t *testing.T) {
	set := commonPasswords()
	if len(set) < 400 {
		t.Fatalf("only %d common passwords", len(set))
	}
	for _, p := range []string{"123456", "password", "qwerty", "iloveyou", "correcthorsebatterystaple"} {
		if _, ok := set[p]; !ok {
			t.Errorf("%q missing", p)
		}
	}
	for p := range set {
		if strings.HasPrefix(p, "#") || p != strings.TrimSpace(p) || p != strings.ToLower(p) {
			t.Errorf("bad entry %q", p)
		}
	}
}
