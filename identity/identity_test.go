package identity

import (
	"errors"
	"strings"
	"testing"
)

func TestFoldIsASCIIOnly(t *testing.T) {
	for in, want := range map[string]string{
		"Alice@Example.COM":  "alice@example.com",
		"\u212Aim":           "\u212Aim", // KELVIN SIGN stays
		"\u017Fsogate-admin": "\u017Fsogate-admin",
		"İstanbul":           "İstanbul",
		"ÄBC":                "Äbc",
		"":                   "",
	} {
		if got := Fold(in); got != want {
			t.Errorf("Fold(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEqualFoldIsASCIIOnly(t *testing.T) {
	same := [][2]string{{"ssogate-Admins", "SSOGATE-admins"}, {"", ""}, {"Ä", "Ä"}}
	differ := [][2]string{
		{"\u017Fsogate-admins", "ssogate-admins"}, // LONG S
		{"\u212Aim", "kim"},                       // KELVIN SIGN
		{"\u212Aim", "Kim"},
		{"ä", "Ä"}, // non-ASCII case is not folded
		{"a", "ab"},
	}
	for _, p := range same {
		if !EqualFold(p[0], p[1]) {
			t.Errorf("EqualFold(%q, %q) = false", p[0], p[1])
		}
	}
	for _, p := range differ {
		if EqualFold(p[0], p[1]) {
			t.Errorf("EqualFold(%q, %q) = true", p[0], p[1])
		}
		if strings.EqualFold(p[0], p[1]) && Key(p[0]) == Key(p[1]) {
			t.Errorf("Key(%q) == Key(%q): Unicode folding leaked into the key", p[0], p[1])
		}
	}
}

func TestParseEmailCanonicalForm(t *testing.T) {
	for in, want := range map[string]string{
		"alice@example.com":               "alice@example.com",
		"Alice.Smith@Example.COM":         "Alice.Smith@example.com", // local part as given
		"o'brien+tag@corp.example":        "o'brien+tag@corp.example",
		"alice@bücher.de":                 "alice@xn--bcher-kva.de",
		"alice@BÜCHER.DE":                 "alice@xn--bcher-kva.de",
		"alice@xn--bcher-kva.de":          "alice@xn--bcher-kva.de",
		"jörg@bücher.de":                  "jörg@xn--bcher-kva.de",
		"a@sub.example.co.uk":             "a@sub.example.co.uk",
		strings.Repeat("a", 64) + "@x.io": strings.Repeat("a", 64) + "@x.io",
	} {
		got, err := ParseEmail(in)
		if err != nil || got != want {
			t.Errorf("ParseEmail(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestParseEmailRefusesAllButOneAddrSpec(t *testing.T) {
	for _, in := range []string{
		"",
		"alice",
		"@example.com",
		"alice@",
		"alice@evil.test@example.com",
		"alice@example.com, mallory@example.com",
		"alice@example.com,mallory@example.com",
		"alice,mallory@example.com",
		"alice;x@example.com",
		"alice@example.com\nmallory@example.com",
		"alice\n@example.com",
		"alice@example.com\n",
		" alice@example.com",
		"alice @example.com",
		"al\tice@example.com",
		"al\x00ice@example.com",
		"al\u202eice@example.com", // RIGHT-TO-LEFT OVERRIDE
		"al\u200bice@example.com", // ZERO WIDTH SPACE
		"al\u00a0ice@example.com", // NO-BREAK SPACE
		`"alice@evil"@example.com`,
		`"alice"@example.com`,
		"alice(comment)@example.com",
		"alice@example.com(comment)",
		"Alice <alice@example.com>",
		"<alice@example.com>",
		"al\\ice@example.com",
		".alice@example.com",
		"alice.@example.com",
		"al..ice@example.com",
		"alice@[192.0.2.1]",
		"alice@192.0.2.1",
		"alice@localhost",
		"alice@example..com",
		"alice@example.com.",
		"alice@-example.com",
		"alice@exa_mple.com",
		"alice@exa mple.com",
		"alice@example.com:443",
		"alice@example.com/path",
		strings.Repeat("a", 65) + "@example.com",
		"a@" + strings.Repeat("b", 64) + ".com",
		"a@" + strings.Repeat(strings.Repeat("b", 60)+".", 5) + "com",
		"al\xffice@example.com",
	} {
		if got, err := ParseEmail(in); err == nil {
			t.Errorf("ParseEmail(%q) = %q, want an error", in, got)
		} else if !errors.Is(err, ErrEmail) {
			t.Errorf("ParseEmail(%q): error %v does not wrap ErrEmail", in, err)
		}
	}
}

// The observed attack: an address spelled with a character that Unicode
// folding maps onto an ASCII letter must not meet the ASCII address.
func TestKeySeparatesLookAlikes(t *testing.T) {
	victim := "kim.sass@example.com"
	for _, attacker := range []string{
		"\u212Aim.sass@example.com", // KELVIN SIGN
		"kim.sa\u017Fs@example.com", // LONG S
		"KIM.SA\u017FS@EXAMPLE.COM",
	} {
		if strings.EqualFold(attacker, victim) == false {
			t.Fatalf("test premise: %q should fold onto %q under Unicode folding", attacker, victim)
		}
		if Key(attacker) == Key(victim) {
			t.Errorf("Key(%q) == Key(%q)", attacker, victim)
		}
	}
	if Key("Kim.Sass@EXAMPLE.com") != Key(victim) {
		t.Errorf("ASCII case must still match")
	}
	if Key("kim@bücher.de") != Key("KIM@xn--bcher-kva.de") {
		t.Errorf("a U-label and its A-label must match")
	}
	if Key("Login-Name") != "login-name" {
		t.Errorf("a login name is folded ASCII-only")
	}
}

func TestEmailDomain(t *testing.T) {
	if d := EmailDomain("a@Bücher.de"); d != "xn--bcher-kva.de" {
		t.Errorf("EmailDomain = %q", d)
	}
	if d := EmailDomain("a@evil.test@example.com"); d != "" {
		t.Errorf("EmailDomain of two addresses = %q, want empty", d)
	}
}

func FuzzParseEmail(f *testing.F) {
	for _, s := range []string{"alice@example.com", "a@bücher.de", "a@b@c.d", "\u212A@x.io"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseEmail(s)
		if err != nil {
			return
		}
		if strings.Count(e, "@") != 1 || strings.ContainsAny(e, " ,;\"()<>\\\r\n\t") {
			t.Fatalf("ParseEmail(%q) = %q", s, e)
		}
		again, err := ParseEmail(e)
		if err != nil || again != e {
			t.Fatalf("canonical form is not a fixed point: %q -> %q, %v", e, again, err)
		}
		if Key(e) != Fold(e) {
			t.Fatalf("Key(%q) = %q", e, Key(e))
		}
	})
}
