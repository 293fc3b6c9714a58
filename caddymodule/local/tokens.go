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
	"strconv"
	"strings"
	"time"

	"github.com/ssogate/ssogate/store"
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

// DeviceTokenLifetime is how long a trusted-device token is honoured
// after it was issued. The server checks it, whatever the cookie's own
// expiry says; signing in again issues a fresh token.
const DeviceTokenLifetime = 30 * 24 * time.Hour

// deviceClockSkew is how far in the future an issue time may lie (a
// token made by another gateway process whose clock runs ahead).
const deviceClockSkew = 5 * time.Minute

// maxDeviceToken bounds what is parsed: a real token is about 80 bytes.
const maxDeviceToken = 128

// Devices issues and checks trusted-device tokens (OWASP's "device
// cookies"): a browser that signed in to an account with its password, or
// set the account's password through a link, gets a token bound to the
// account. Sign-in attempts that present a valid token for the account
// they try are throttled per device instead of per account and per
// source, so an attacker who locks the account does not lock out the
// browsers its owner already uses. The token is no credential: the
// password is still required.
//
// A token carries a random device ID, its issue time and a MAC over both
// and the account's org, ID and credential version (store.User.CredVersion).
// It stops working after DeviceTokenLifetime, and as soon as the
// account's password is reset or replaced or the account is removed (a
// new account under the same address has another ID): a browser that
// knew the old password is no longer trusted.
type Devices struct {
	keys [][]byte
	// Now is the clock (default time.Now); tests set it.
	Now func() time.Time
}

// NewDevices keys tokens with secrets; the first one signs, all verify
// (so session key rotation keeps devices trusted).
func NewDevices(secrets [][]byte) (*Devices, error) {
	keys, err := deriveKeys(secrets, "trusted device")
	if err != nil {
		return nil, err
	}
	return &Devices{keys: keys}, nil
}

func (d *Devices) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func deviceMAC(key []byte, sid, issued string, u *store.User) []byte {
	return mac(key, "device", sid, issued, u.OrgID, u.ID, strconv.FormatUint(u.CredVersion, 10))
}

// Issue returns a new token for a browser that proved it controls the
// account u: its password or its set-password link. u must be the
// account as stored after that proof (with its current CredVersion).
func (d *Devices) Issue(u *store.User) (string, error) {
	if u == nil || u.ID == "" {
		return "", errors.New("device token: no account")
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return "", fmt.Errorf("device token: %w", err)
	}
	enc := base64.RawURLEncoding
	sid := enc.EncodeToString(id)
	issued := strconv.FormatInt(d.now().Unix(), 10)
	return sid + "." + issued + "." + enc.EncodeToString(deviceMAC(d.keys[0], sid, issued, u)), nil
}

// Verify returns the device ID of a token that is valid for the account
// u now: made for this account at its current credential version, and
// issued less than DeviceTokenLifetime ago.
func (d *Devices) Verify(token string, u *store.User) (string, bool) {
	if u == nil || len(token) > maxDeviceToken {
		return "", false
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 || len(parts[0]) != 22 {
		return "", false
	}
	sid, issued := parts[0], parts[1]
	secs, err := strconv.ParseInt(issued, 10, 64)
	if err != nil || strconv.FormatInt(secs, 10) != issued { // one spelling per time
		return "", false
	}
	now := d.now()
	at := time.Unix(secs, 0)
	if at.After(now.Add(deviceClockSkew)) || now.Sub(at) >= DeviceTokenLifetime {
		return "", false
	}
	got, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return "", false
	}
	for _, k := range d.keys {
		if hmac.Equal(got, deviceMAC(k, sid, issued, u)) {
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
