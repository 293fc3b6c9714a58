package local

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// linkTokenBytes is the entropy of a set-password link: 256 bits.
const linkTokenBytes = 32

// NewLinkToken returns a fresh set-password link token (URL-safe) and the
// hash under which the store keeps it. The token itself is shown once and
// never stored.
func NewLinkToken() (token, hash string, err error) {
	b := make([]byte, linkTokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("link token: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, HashLinkToken(token), nil
}

// HashLinkToken is the store key of a link token: its SHA-256 in hex. A
// plain hash is enough because the token is 256 random bits, not a
// password.
func HashLinkToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// LooksLikeLinkToken rejects, before any lookup, what NewLinkToken cannot
// have made.
func LooksLikeLinkToken(token string) bool {
	b, err := base64.RawURLEncoding.DecodeString(token)
	return err == nil && len(b) == linkTokenBytes
}

// deriveKeys stretches each secret into an independent key for purpose,
// so that the session keys can also key device and CSRF tokens without a
// token of one kind ever being valid as another.
func deriveKeys(secrets [][]byte, purpose string) ([][]byte, error) {
	if len(secrets) == 0 {
		return nil, errors.New("no secret")
	}
	keys := make([][]byte, len(secrets))
	for i, s := range secrets {
		k, err := hkdf.Key(sha256.New, s, nil, "ssogate "+purpose, 32)
		if err != nil {
			return nil, fmt.Errorf("deriving %s key: %w", purpose, err)
		}
		keys[i] = k
	}
	return keys, nil
}

func mac(key []byte, parts ...string) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		// Length-prefixed, so that ("ab","c") and ("a","bc") differ.
		fmt.Fprintf(m, "%d:%s|", len(p), p)
	}
	return m.Sum(nil)
}

// Devices issues and checks trusted-device tokens (OWASP's "device
// cookies"): a browser that signed in to an account with its password, or
// set the account's password through a link, gets a token bound to the
// account's address. Sign-in attempts that present a valid token for the
// address they try are throttled per device instead of per account and per
// source, so an attacker who locks the account does not lock out the
// browsers its owner already uses. The token is no credential: the
// password is still required. It carries a random device ID and a MAC,
// not the address.
type Devices struct{ keys [][]byte }

// NewDevices keys tokens with secrets; the first one signs, all verify
// (so session key rotation keeps devices trusted).
func NewDevices(secrets [][]byte) (*Devices, error) {
	keys, err := deriveKeys(secrets, "trusted device")
	if err != nil {
		return nil, err
	}
	return &Devices{keys: keys}, nil
}

// Issue returns a new token for a browser that proved it controls the
// account with this address.
func (d *Devices) Issue(email string) (string, error) {
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return "", fmt.Errorf("device token: %w", err)
	}
	enc := base64.RawURLEncoding
	sid := enc.EncodeToString(id)
	return sid + "." + enc.EncodeToString(mac(d.keys[0], "device", sid, strings.ToLower(email))), nil
}

// Verify returns the device ID of a token valid for this address.
func (d *Devices) Verify(token, email string) (string, bool) {
	sid, sig, ok := strings.Cut(token, ".")
	if !ok || len(sid) != 22 {
		return "", false
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return "", false
	}
	for _, k := range d.keys {
		if hmac.Equal(got, mac(k, "device", sid, strings.ToLower(email))) {
			return sid, true
		}
	}
	return "", false
}

// CSRF makes and checks anti-CSRF tokens bound to something only the
// legitimate page knows: the session (for signed-in pages) or a random
// pre-session cookie (for the sign-in and set-password forms). A token is
// an HMAC of the binding, so nothing is stored; comparison is constant
// time.
type CSRF struct{ keys [][]byte }

// NewCSRF keys tokens with secrets; the first one signs, all verify.
func NewCSRF(secrets [][]byte) (*CSRF, error) {
	keys, err := deriveKeys(secrets, "csrf")
	if err != nil {
		return nil, err
	}
	return &CSRF{keys: keys}, nil
}

// Token returns the token for binding.
func (c *CSRF) Token(binding string) string {
	return base64.RawURLEncoding.EncodeToString(mac(c.keys[0], "csrf", binding))
}

// Valid reports whether token was made for binding.
func (c *CSRF) Valid(binding, token string) bool {
	if binding == "" || token == "" {
		return false
	}
	got, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return false
	}
	for _, k := range c.keys {
		if hmac.Equal(got, mac(k, "csrf", binding)) {
			return true
		}
	}
	return false
}
