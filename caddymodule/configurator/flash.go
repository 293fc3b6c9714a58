package configurator

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Flashes hand the outcome of a form post to the page its redirect leads
// to (Post/Redirect/Get) when the outcome cannot travel in the URL: a new
// secret (a SCIM token, an invitation link) or a refusal with the input
// to show again. Each session has one slot; reading it empties it, so a
// reload shows the page without the secret and repeats nothing.
//
// They live in memory: a flash lost to a restart costs the admin one
// more click, while a secret written to disk or a URL would outlive its
// single showing.
//
// Memory is bounded three ways: each organization keeps at most
// maxOrgFlashes, and making room for one evicts only that organization's
// own (an admin of one tenant with many sessions cannot push out another
// tenant's new SCIM token); the store keeps at most maxFlashes and
// maxTotalBytes, and beyond those the organization holding the most
// gives up its oldest.
type Flashes struct {
	mu    sync.Mutex
	m     map[string]*flashEntry // by session
	orgs  map[string]*orgFlashes // by organization
	bytes int                    // sum of the entries' sizes
}

// A Flash is a post's outcome kept for the page its redirect leads to.
type Flash interface {
	// Detach makes the value own every string it keeps and returns the
	// bytes they take. A string cut from a parsed form shares the memory
	// of the whole request body (url.ParseQuery returns substrings where
	// nothing needed decoding), so a three-byte echo would keep a MiB
	// alive for the flash's lifetime.
	Detach() int
}

type flashEntry struct {
	org     string
	id      string
	v       Flash
	size    int
	expires time.Time
}

type orgFlashes struct{ n, bytes int }

const (
	// flashTTL is long enough for a slow redirect, short enough that a
	// secret does not wait long for a reader.
	flashTTL = 5 * time.Minute
	// maxFlashes bounds the number kept: one slot per signed-in admin.
	maxFlashes = 4096
	// maxOrgFlashes is one organization's share: its admins' sessions
	// that posted in the last flashTTL, far more than a team has.
	maxOrgFlashes = 16
	// maxFlashBytes is the most one flash may hold: two echoed fields
	// of MaxEcho (metadata XML, a certificate) plus short ones.
	maxFlashBytes = 4 * MaxEcho
	// maxTotalBytes bounds the memory of all flashes together.
	maxTotalBytes = 64 << 20
	// flashOverhead is charged per entry for the map slot, the ID and
	// the value's own structure.
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

// NewFlashes returns an empty store.
func NewFlashes() *Flashes {
	return &Flashes{m: make(map[string]*flashEntry), orgs: make(map[string]*orgFlashes)}
}

// Put keeps v for session, an admin session of org, and returns the ID
// the redirect carries. v is detached (see Flash) first.
func (f *Flashes) Put(org, session string, v Flash) (string, error) {
	size := v.Detach() + flashOverhead
	if size > maxFlashBytes {
		return "", fmt.Errorf("flash of %d bytes exceeds %d", size, maxFlashBytes)
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("flash ID: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(b)
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if old, ok := f.m[session]; ok {
		f.drop(session, old)
	}
	for k, e := range f.m {
		if now.After(e.expires) {
			f.drop(k, e)
		}
	}
	for f.orgs[org] != nil && f.orgs[org].n >= maxOrgFlashes {
		f.dropOldest(org)
	}
	for len(f.m) >= maxFlashes || f.bytes+size > maxTotalBytes {
		heaviest, most := "", 0
		for name, o := range f.orgs {
			if o.bytes > most {
				heaviest, most = name, o.bytes
			}
		}
		if heaviest == "" {
			break
		}
		f.dropOldest(heaviest)
	}
	f.m[session] = &flashEntry{org: org, id: id, v: v, size: size, expires: now.Add(flashTTL)}
	o := f.orgs[org]
	if o == nil {
		o = &orgFlashes{}
		f.orgs[org] = o
	}
	o.n++
	o.bytes += size
	f.bytes += size
	return id, nil
}

// Take returns and forgets session's flash if id names it; nil otherwise.
func (f *Flashes) Take(session, id string) Flash {
	if id == "" {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.m[session]
	if !ok || subtle.ConstantTimeCompare([]byte(e.id), []byte(id)) != 1 {
		return nil
	}
	f.drop(session, e)
	if time.Now().After(e.expires) {
		return nil
	}
	return e.v
}

// drop forgets session's entry e. f.mu is held.
func (f *Flashes) drop(session string, e *flashEntry) {
	delete(f.m, session)
	f.bytes -= e.size
	if o := f.orgs[e.org]; o != nil {
		o.n--
		o.bytes -= e.size
		if o.n == 0 {
			delete(f.orgs, e.org)
		}
	}
}

// dropOldest forgets org's flash that expires first: the outcome its
// admin has waited longest to come back for. f.mu is held.
func (f *Flashes) dropOldest(org string) {
	var oldest string
	var at *flashEntry
	for k, e := range f.m {
		if e.org == org && (at == nil || e.expires.Before(at.expires)) {
			oldest, at = k, e
		}
	}
	if at != nil {
		f.drop(oldest, at)
	}
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
