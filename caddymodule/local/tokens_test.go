package local

import (
	"strings"
	"testing"
)

func TestLinkTokens(t *testing.T) {
	tok, hash, err := NewLinkToken()
	if err != nil {
		t.Fatal(err)
	}
	if !LooksLikeLinkToken(tok) || len(tok) != 43 || strings.ContainsAny(tok, "+/=") {
		t.Errorf("token %q", tok)
	}
	if hash != HashLinkToken(tok) || len(hash) != 64 || strings.Contains(hash, tok) {
		t.Errorf("hash %q", hash)
	}
	tok2, hash2, _ := NewLinkToken()
	if tok2 == tok || hash2 == hash {
		t.Error("two tokens are equal")
	}
	for _, bad := range []string{"", "abc", tok + "A", strings.Repeat("*", 43), tok[:42]} {
		if LooksLikeLinkToken(bad) {
			t.Errorf("%q looks like a token", bad)
		}
	}
}

func TestDeviceTokens(t *testing.T) {
	old := []byte("an old session key of at least 32 bytes....")
	cur := []byte("the current session key, also 32+ bytes long")
	d, err := NewDevices([][]byte{old})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := d.Issue("Alice@Example.com")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.ToLower(tok), "alice") {
		t.Errorf("token carries the address: %q", tok)
	}
	id, ok := d.Verify(tok, "alice@example.COM")
	if !ok || id == "" || !strings.HasPrefix(tok, id+".") {
		t.Fatalf("Verify = %q, %v", id, ok)
	}
	if _, ok := d.Verify(tok, "bob@example.com"); ok {
		t.Error("token valid for another address")
	}
	for _, bad := range []string{"", tok[:len(tok)-2], "x." + strings.SplitN(tok, ".", 2)[1], strings.Replace(tok, ".", "", 1)} {
		if _, ok := d.Verify(bad, "alice@example.com"); ok {
			t.Errorf("%q accepted", bad)
		}
	}
	// Rotation: a token signed with the old key still verifies.
	rotated, _ := NewDevices([][]byte{cur, old})
	if _, ok := rotated.Verify(tok, "alice@example.com"); !ok {
		t.Error("token lost after key rotation")
	}
	other, _ := NewDevices([][]byte{cur})
	if _, ok := other.Verify(tok, "alice@example.com"); ok {
		t.Error("token valid under an unrelated key")
	}
	// A device token is not a CSRF token and vice versa, even for the same
	// input and key.
	c, _ := NewCSRF([][]byte{old})
	if c.Valid(strings.SplitN(tok, ".", 2)[0], strings.SplitN(tok, ".", 2)[1]) {
		t.Error("device token accepted as CSRF token")
	}
}

func TestCSRFTokens(t *testing.T) {
	c, err := NewCSRF([][]byte{[]byte("a session key of at least 32 bytes.........")})
	if err != nil {
		t.Fatal(err)
	}
	tok := c.Token("session:abc")
	if !c.Valid("session:abc", tok) {
		t.Fatal("own token refused")
	}
	for _, tc := range []struct{ binding, token string }{
		{"session:abd", tok}, {"session:abc", ""}, {"", tok}, {"session:abc", tok + "A"}, {"session:abc", "!!"},
		{"session:abc", c.Token("session:ab")},
	} {
		if c.Valid(tc.binding, tc.token) {
			t.Errorf("Valid(%q, %q) = true", tc.binding, tc.token)
		}
	}
	if _, err := NewCSRF(nil); err == nil {
		t.Error("NewCSRF without keys succeeded")
	}
}
