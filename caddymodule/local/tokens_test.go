package local

import (
	"strings"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
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
	c := newClock()
	d, err := NewDevices([][]byte{old})
	if err != nil {
		t.Fatal(err)
	}
	d.Now = c.now
	alice := &store.User{ID: "u-alice", OrgID: "acme", UserName: "alice@example.com", CredVersion: 3}
	tok, err := d.Issue(alice)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(tok, "alice") || strings.Contains(tok, "u-alice") {
		t.Errorf("token carries the account: %q", tok)
	}
	id, ok := d.Verify(tok, alice)
	if !ok || id == "" || !strings.HasPrefix(tok, id+".") {
		t.Fatalf("Verify = %q, %v", id, ok)
	}
	// Bound to the account: its org, its ID and its credential version.
	for name, u := range map[string]*store.User{
		"another account":             {ID: "u-bob", OrgID: "acme", CredVersion: 3},
		"the same ID in another org":  {ID: "u-alice", OrgID: "evil", CredVersion: 3},
		"after a password reset":      {ID: "u-alice", OrgID: "acme", CredVersion: 4},
		"a re-created account (v. 0)": {ID: "u-alice2", OrgID: "acme"},
	} {
		if _, ok := d.Verify(tok, u); ok {
			t.Errorf("token valid for %s", name)
		}
	}
	parts := strings.Split(tok, ".")
	for _, bad := range []string{
		"", tok[:len(tok)-2], "x." + parts[1] + "." + parts[2], strings.Replace(tok, ".", "", 1),
		parts[0] + "." + parts[2], // the format before issue times
		parts[0] + ".0" + parts[1] + "." + parts[2], parts[0] + ".+" + parts[1] + "." + parts[2],
		tok + strings.Repeat("A", 100),
	} {
		if _, ok := d.Verify(bad, alice); ok {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, ok := d.Verify(tok, nil); ok {
		t.Error("token valid without an account")
	}
	// Rotation: a token signed with the old key still verifies.
	rotated, _ := NewDevices([][]byte{cur, old})
	rotated.Now = c.now
	if _, ok := rotated.Verify(tok, alice); !ok {
		t.Error("token lost after key rotation")
	}
	other, _ := NewDevices([][]byte{cur})
	other.Now = c.now
	if _, ok := other.Verify(tok, alice); ok {
		t.Error("token valid under an unrelated key")
	}
	// The server checks the issue time: valid until the lifetime ends.
	c.advance(DeviceTokenLifetime - time.Second)
	if _, ok := d.Verify(tok, alice); !ok {
		t.Error("token refused before its lifetime ended")
	}
	c.advance(time.Second)
	if _, ok := d.Verify(tok, alice); ok {
		t.Error("token valid after its lifetime")
	}
	// A token from the future (beyond clock skew) is refused.
	future, _ := d.Issue(alice)
	c.advance(-10 * time.Minute)
	if _, ok := d.Verify(future, alice); ok {
		t.Error("token issued in the future accepted")
	}
	// A device token is not a CSRF token and vice versa, even for the same
	// input and key.
	cs, _ := NewCSRF([][]byte{old})
	if cs.Valid(parts[0], parts[2]) {
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
