package configurator

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"sync"
	"time"
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
type Flashes struct {
	mu sync.Mutex
	m  map[string]flashEntry // by session
}

type flashEntry struct {
	id      string
	v       any
	expires time.Time
}

const (
	// flashTTL is long enough for a slow redirect, short enough that a
	// secret does not wait long for a reader.
	flashTTL = 5 * time.Minute
	// maxFlashes bounds the memory: one slot per signed-in admin, and
	// a flash carries at most MaxEcho bytes of input.
	maxFlashes = 4096
	// MaxEcho caps the input a refusal keeps to show again; larger input
	// (a huge metadata document) is not shown again.
	MaxEcho = 64 << 10
)

// NewFlashes returns an empty store.
func NewFlashes() *Flashes {
	return &Flashes{m: make(map[string]flashEntry)}
}

// Put keeps v for session and returns the ID the redirect carries.
func (f *Flashes) Put(session string, v any) (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	id := base64.RawURLEncoding.EncodeToString(b)
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.m[session]; !ok && len(f.m) >= maxFlashes {
		for k, e := range f.m {
			if now.After(e.expires) {
				delete(f.m, k)
			}
		}
		// Still full: the oldest outcome someone has not come back for
		// makes room.
		for len(f.m) >= maxFlashes {
			var oldest string
			var at time.Time
			for k, e := range f.m {
				if oldest == "" || e.expires.Before(at) {
					oldest, at = k, e.expires
				}
			}
			delete(f.m, oldest)
		}
	}
	f.m[session] = flashEntry{id: id, v: v, expires: now.Add(flashTTL)}
	return id, nil
}

// Take returns and forgets session's flash if id names it; nil otherwise.
func (f *Flashes) Take(session, id string) any {
	if id == "" {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.m[session]
	if !ok || subtle.ConstantTimeCompare([]byte(e.id), []byte(id)) != 1 {
		return nil
	}
	delete(f.m, session)
	if time.Now().After(e.expires) {
		return nil
	}
	return e.v
}
