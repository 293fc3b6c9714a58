package configurator

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ssogate/ssogate/store"
)

// Flashes hand the outcome of a form post to the page its redirect leads
// to (Post/Redirect/Get) when the outcome cannot travel in the URL: a new
// secret (a SCIM token, an invitation link) or a refusal with the input
// to show again. Each session has one slot; reading it empties it, so a
// reload shows the page without the secret and repeats nothing.
//
// The redirect may land on another gateway process, so a flash is kept in
// the store (store.PutFlash) for flashTTL, and taking it is one
// transaction: shown once across every process. A cookie could not carry
// it (an echoed metadata document is far beyond a cookie's 4 KB), and a
// secret must not be left readable at rest, so each flash is sealed
// (AES-256-GCM) with a key derived from the admin's session cookie (see
// session.Manager.BrowserSecret), which the store never holds: a copy of
// the database, even with the gateway's own generated keys in it, opens
// no flash. The gateway's configured keys would not do: when none is
// configured, the one generated sits in the same database.
//
// Each organization keeps at most maxOrgFlashes, and making room evicts
// only that organization's own (an admin of one tenant with many sessions
// cannot push out another tenant's new SCIM token); each flash is bounded
// in bytes and expires after flashTTL.
type Flashes struct {
	st *store.Store
}

// A Flash is a post's outcome kept for the page its redirect leads to.
// It travels as JSON.
type Flash interface {
	// Detach trims the value to what may be kept (echoed inputs too
	// large to keep are dropped) and returns the bytes it then holds.
	Detach() int
}

const (
	// flashTTL is long enough for a slow redirect, short enough that a
	// secret does not wait long for a reader.
	flashTTL = 5 * time.Minute
	// maxOrgFlashes is one organization's share: its admins' sessions
	// that posted in the last flashTTL, far more than a team has.
	maxOrgFlashes = 16
	// maxFlashBytes is the most one flash may hold: two echoed fields
	// of MaxEcho (metadata XML, a certificate) plus short ones.
	maxFlashBytes = 4 * MaxEcho
	// flashOverhead is charged per flash for its structure.
	flashOverhead = 512

	// MaxEcho caps one echoed input a refusal keeps to show again (a
	// pasted metadata document); a larger one is not shown again.
	MaxEcho = 64 << 10
	// MaxShortEcho caps an echoed one-line input (a domain, a group
	// name, an entity ID, a URL).
	MaxShortEcho = 2 << 10
	// MaxMessage caps a kept message; a longer one is cut short.
	MaxMessage = 1 << 10
)

// NewFlashes returns flashes kept in st.
func NewFlashes(st *store.Store) *Flashes {
	return &Flashes{st: st}
}

// Put keeps v for session, an admin session of org, sealed with key (the
// session's browser secret), and returns the ID the redirect carries. v
// is detached (see Flash) first.
func (f *Flashes) Put(org, session string, key []byte, v Flash) (string, error) {
	size := v.Detach() + flashOverhead
	if size > maxFlashBytes {
		return "", fmt.Errorf("flash of %d bytes exceeds %d", size, maxFlashBytes)
	}
	aead, err := flashAEAD(key)
	if err != nil {
		return "", err
	}
	plain, err := EncodeJSON(v)
	if err != nil {
		return "", fmt.Errorf("encoding flash: %w", err)
	}
	b := make([]byte, 16+aead.NonceSize())
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("flash ID: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(b[:16])
	nonce := b[16:]
	sealed := aead.Seal(nonce[:len(nonce):len(nonce)], nonce, plain, flashAD(org, session, id))
	idHash := sha256.Sum256([]byte(id))
	if err := f.st.PutFlash(org, session, idHash[:], sealed, time.Now().Add(flashTTL), maxOrgFlashes); err != nil {
		return "", fmt.Errorf("keeping flash: %w", err)
	}
	return id, nil
}

// Take fills into with session's flash and forgets it, if id names it;
// false if there is none (taken already, expired, replaced, or sealed for
// another browser). Errors are the store's.
func (f *Flashes) Take(org, session string, key []byte, id string, into Flash) (bool, error) {
	if id == "" || len(id) > 64 {
		return false, nil
	}
	idHash := sha256.Sum256([]byte(id))
	sealed, err := f.st.TakeFlash(org, session, idHash[:])
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("taking flash: %w", err)
	}
	aead, err := flashAEAD(key)
	if err != nil {
		return false, err
	}
	if len(sealed) < aead.NonceSize() {
		return false, nil
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], flashAD(org, session, id))
	if err != nil {
		// Sealed for another cookie of the same session record cannot
		// happen; a tampered record can. Either way: nothing to show.
		return false, nil
	}
	if err := json.Unmarshal(plain, into); err != nil {
		return false, fmt.Errorf("decoding flash: %w", err)
	}
	return true, nil
}

// EncodeJSON is json.Marshal without HTML escaping, for a Flash's
// MarshalJSON: an echoed metadata document would grow sixfold with it.
func EncodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// flashAEAD is the cipher of a session's flashes.
func flashAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) < 32 {
		return nil, errors.New("flash: no browser secret to seal with")
	}
	k, err := hkdf.Key(sha256.New, key, nil, "ssogate flash v1", 32)
	if err != nil {
		return nil, fmt.Errorf("flash key: %w", err)
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("flash cipher: %w", err)
	}
	return cipher.NewGCM(block)
}

// flashAD binds a sealed flash to where it is kept and to its ID, so a
// record copied to another slot does not open.
func flashAD(org, session, id string) []byte {
	return []byte(org + "\x00" + session + "\x00" + id)
}

// Own returns a copy of s that shares no memory with the request it came
// from, or "" when s is longer than max bytes: input too large to keep
// is not shown again.
func Own(s string, max int) string {
	if len(s) > max {
		return ""
	}
	return strings.Clone(s)
}

// OwnMessage returns a copy of message, cut to at most MaxMessage bytes
// on a character boundary.
func OwnMessage(message string) string {
	if len(message) <= MaxMessage {
		return strings.Clone(message)
	}
	cut := MaxMessage - len("…")
	for cut > 0 && !utf8.RuneStart(message[cut]) {
		cut--
	}
	return message[:cut] + "…"
}
