// Package local implements ssogate's local accounts: the accounts with a
// password that exist so an organization's owner can configure SSO before
// it works, and so a designated backup login can still get in when the
// IdP is down (SPEC §2, §3.8).
//
// It holds the parts that are independent of HTTP: argon2id password
// hashing (Argon2id), the password policy (CheckPassword), sign-in
// throttling with exponential back-off (Throttle), trusted-device tokens
// that let a browser which signed in before bypass an account lock
// (Devices), one-time set-password link tokens (NewLinkToken), CSRF tokens
// (CSRF) and the sign-in decision itself (Authenticator), which runs the
// same single password hash whether or not the account exists.
package local

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id's cost parameters.
type Params struct {
	// Time is the number of passes over memory.
	Time uint32 `json:"time,omitempty"`
	// MemoryKiB is the memory used by one hash, in KiB.
	MemoryKiB uint32 `json:"memory_kib,omitempty"`
	// Threads is the degree of parallelism (lanes).
	Threads uint8 `json:"threads,omitempty"`
}

// DefaultParams are RFC 9106's second recommended option (§4): 3 passes
// over 64 MiB with 4 lanes.
var DefaultParams = Params{Time: 3, MemoryKiB: 64 * 1024, Threads: 4}

// Bounds on parameters, both configured and read from stored hashes: a
// corrupted or hostile hash string must not make a verification allocate
// gigabytes or run for minutes.
const (
	minMemoryKiB = 8 * 1024
	maxMemoryKiB = 1 << 20 // 1 GiB
	maxTime      = 64
	saltLen      = 16
	keyLen       = 32
	minKeyLen    = 16
	maxKeyLen    = 64
)

// MaxPasswordBytes bounds what is hashed. Argon2 pre-hashes any length, but
// there is no reason to read megabytes from a sign-in form.
const MaxPasswordBytes = 1024

// Validate checks p against the bounds the hasher enforces.
func (p Params) Validate() error {
	switch {
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("time must be between 1 and %d", maxTime)
	case p.MemoryKiB < minMemoryKiB || p.MemoryKiB > maxMemoryKiB:
		return fmt.Errorf("memory must be between %d KiB and %d KiB", minMemoryKiB, maxMemoryKiB)
	case p.Threads < 1:
		return errors.New("threads must be at least 1")
	case p.MemoryKiB < 8*uint32(p.Threads):
		return errors.New("memory must be at least 8 KiB per thread")
	}
	return nil
}

// WithDefaults fills zero fields from DefaultParams.
func (p Params) WithDefaults() Params {
	if p.Time == 0 {
		p.Time = DefaultParams.Time
	}
	if p.MemoryKiB == 0 {
		p.MemoryKiB = DefaultParams.MemoryKiB
	}
	if p.Threads == 0 {
		p.Threads = DefaultParams.Threads
	}
	return p
}

// Hasher hashes and verifies passwords. Authenticator calls Verify exactly
// once per attempt that is not throttled, whether or not the account
// exists; tests count calls through their own Hasher to check that.
type Hasher interface {
	// Hash returns an encoded hash of password that Verify accepts.
	Hash(ctx context.Context, password string) (string, error)
	// Verify reports whether password matches the encoded hash. A
	// malformed hash is an error, never a match.
	Verify(ctx context.Context, encoded, password string) (bool, error)
	// NeedsRehash reports whether encoded was made with other parameters
	// than the hasher's, so that a successful sign-in should store a new
	// hash.
	NeedsRehash(encoded string) bool
}

// Argon2id is the Hasher ssogate uses: argon2id with a random 16-byte salt
// and a 32-byte key, encoded in the PHC string format
// ($argon2id$v=19$m=...,t=...,p=...$salt$key) so that hashes made with
// earlier parameters keep verifying after the configuration changes.
//
// Each hash takes Params.MemoryKiB of memory for its duration. A
// semaphore bounds how many run at once, so a flood of sign-in attempts
// queues instead of exhausting memory; waiting ends with the request's
// context. The queue is bounded too: when it is full, Hash and Verify
// fail at once with ErrBusy instead of queueing without end (each waiter
// holds a request and its connection, and waits behind every hash
// queued before it).
type Argon2id struct {
	params Params
	slots  chan struct{} // hashes running
	admit  chan struct{} // hashes running or waiting for a slot
}

// ErrBusy: too many hashes are queued already; the attempt was not
// checked. Tell the client to retry later (503).
var ErrBusy = errors.New("argon2id: too many password hashes queued")

// NewArgon2id returns a hasher with params (zero fields take defaults)
// that runs at most maxConcurrent hashes at a time (<= 0: one per CPU)
// and lets at most maxQueued more wait for their turn (<= 0: 16 per
// concurrent hash).
func NewArgon2id(params Params, maxConcurrent, maxQueued int) (*Argon2id, error) {
	params = params.WithDefaults()
	if err := params.Validate(); err != nil {
		return nil, fmt.Errorf("argon2id: %w", err)
	}
	if maxConcurrent <= 0 {
		maxConcurrent = runtime.GOMAXPROCS(0)
	}
	if maxQueued <= 0 {
		maxQueued = 16 * maxConcurrent
	}
	return &Argon2id{
		params: params,
		slots:  make(chan struct{}, maxConcurrent),
		admit:  make(chan struct{}, maxConcurrent+maxQueued),
	}, nil
}

// Params returns the hasher's parameters.
func (h *Argon2id) Params() Params { return h.params }

func (h *Argon2id) acquire(ctx context.Context) error {
	select {
	case h.admit <- struct{}{}:
	default:
		return ErrBusy
	}
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		<-h.admit
		return fmt.Errorf("argon2id: waiting for a hashing slot: %w", ctx.Err())
	}
}

func (h *Argon2id) release() {
	<-h.slots
	<-h.admit
}

// Hash implements Hasher.
func (h *Argon2id) Hash(ctx context.Context, password string) (string, error) {
	if len(password) > MaxPasswordBytes {
		return "", errors.New("argon2id: password too long")
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("argon2id: salt: %w", err)
	}
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	p := h.params
	key := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, keyLen)
	return encode(p, salt, key), nil
}

// Verify implements Hasher.
func (h *Argon2id) Verify(ctx context.Context, encoded, password string) (bool, error) {
	p, salt, key, err := decode(encoded)
	if err != nil {
		return false, err
	}
	// An over-long password never matches, but still costs the same hash,
	// so that it is no shortcut around the work an attempt takes.
	tooLong := len(password) > MaxPasswordBytes
	if tooLong {
		password = password[:MaxPasswordBytes]
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	got := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1 && !tooLong, nil
}

// NeedsRehash implements Hasher.
func (h *Argon2id) NeedsRehash(encoded string) bool {
	p, _, key, err := decode(encoded)
	return err != nil || p != h.params || len(key) != keyLen
}

var b64 = base64.RawStdEncoding

func encode(p Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.MemoryKiB, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

var errMalformed = errors.New("argon2id: malformed hash")

func decode(encoded string) (Params, []byte, []byte, error) {
	var p Params
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, errMalformed
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, nil, nil, fmt.Errorf("argon2id: unsupported version %q", parts[2])
	}
	var threads uint32
	if n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Time, &threads); err != nil || n != 3 || threads > 255 {
		return p, nil, nil, errMalformed
	}
	p.Threads = uint8(threads)
	if err := p.Validate(); err != nil {
		return p, nil, nil, fmt.Errorf("argon2id: stored hash parameters: %w", err)
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return p, nil, nil, errMalformed
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil || len(key) < minKeyLen || len(key) > maxKeyLen {
		return p, nil, nil, errMalformed
	}
	return p, salt, key, nil
}

// dummyHash is a hash of a random password that nobody knows, verified
// against when the account does not exist or has no password yet, so that
// every sign-in attempt costs one hash with the current parameters.
type dummyHash struct {
	mu   sync.Mutex
	hash string
}

// get makes the hash on first use. A failure is not kept: a first attempt
// that found the hasher busy must not break the dummy for every attempt
// after it. The lock is not held while hashing, so that attempts arriving
// meanwhile wait in the hasher's bounded queue (each making a hash of its
// own, the one its attempt costs anyway), not on the lock.
func (d *dummyHash) get(ctx context.Context, h Hasher) (string, error) {
	d.mu.Lock()
	hash := d.hash
	d.mu.Unlock()
	if hash != "" {
		return hash, nil
	}
	pw := make([]byte, 24)
	if _, err := rand.Read(pw); err != nil {
		return "", fmt.Errorf("dummy password: %w", err)
	}
	hash, err := h.Hash(ctx, b64.EncodeToString(pw))
	if err != nil {
		return "", err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.hash == "" {
		d.hash = hash
	}
	return d.hash, nil
}
