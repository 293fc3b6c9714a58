package local

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// testParams keep the tests fast; the encoding and checks are the same.
var testParams = Params{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}

func newTestHasher(t testing.TB) *Argon2id {
	t.Helper()
	h, err := NewArgon2id(testParams, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestArgon2idRoundTrip(t *testing.T) {
	ctx := context.Background()
	h := newTestHasher(t)
	enc, err := h.Hash(ctx, "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=8192,t=1,p=1$") {
		t.Errorf("encoding = %q", enc)
	}
	if ok, err := h.Verify(ctx, enc, "correct horse battery"); !ok || err != nil {
		t.Errorf("right password: %v, %v", ok, err)
	}
	for _, wrong := range []string{"", "correct horse batter", "Correct horse battery", "correct horse battery "} {
		if ok, err := h.Verify(ctx, enc, wrong); ok || err != nil {
			t.Errorf("%q: %v, %v", wrong, ok, err)
		}
	}
	again, _ := h.Hash(ctx, "correct horse battery")
	if again == enc {
		t.Error("two hashes of one password are equal: no salt?")
	}
	if h.NeedsRehash(enc) {
		t.Error("fresh hash needs rehash")
	}

	// A hash made with other parameters still verifies, and is flagged for
	// an upgrade.
	stronger, err := NewArgon2id(Params{Time: 2, MemoryKiB: 16 * 1024, Threads: 2}, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := stronger.Verify(ctx, enc, "correct horse battery"); !ok {
		t.Error("old-parameter hash does not verify")
	}
	if !stronger.NeedsRehash(enc) {
		t.Error("old-parameter hash not flagged for rehash")
	}
}

func TestArgon2idRefusesMalformedAndHostileHashes(t *testing.T) {
	ctx := context.Background()
	h := newTestHasher(t)
	good, _ := h.Hash(ctx, "x")
	parts := strings.Split(good, "$")
	for name, enc := range map[string]string{
		"empty":        "",
		"bcrypt":       "$2a$10$abcdefghijklmnopqrstuuJ2sM0x6a0N3V0bQxQ0eGm4lJz5zP6Ge",
		"argon2i":      strings.Replace(good, "argon2id", "argon2i", 1),
		"old version":  strings.Replace(good, "v=19", "v=16", 1),
		"huge memory":  "$argon2id$v=19$m=4194304,t=1,p=1$" + parts[4] + "$" + parts[5],
		"huge time":    "$argon2id$v=19$m=8192,t=100000,p=1$" + parts[4] + "$" + parts[5],
		"zero threads": "$argon2id$v=19$m=8192,t=1,p=0$" + parts[4] + "$" + parts[5],
		"bad salt":     "$argon2id$v=19$m=8192,t=1,p=1$!!$" + parts[5],
		"short key":    "$argon2id$v=19$m=8192,t=1,p=1$" + parts[4] + "$AAAA",
		"extra field":  good + "$x",
	} {
		if ok, err := h.Verify(ctx, enc, "x"); ok || err == nil {
			t.Errorf("%s: Verify = %v, %v; want an error", name, ok, err)
		}
		if !h.NeedsRehash(enc) {
			t.Errorf("%s: NeedsRehash = false", name)
		}
	}
}

func TestArgon2idLongPasswordsNeverMatch(t *testing.T) {
	ctx := context.Background()
	h := newTestHasher(t)
	long := strings.Repeat("a", MaxPasswordBytes)
	enc, err := h.Hash(ctx, long)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := h.Verify(ctx, enc, long); !ok {
		t.Error("longest allowed password does not verify")
	}
	// Same first 1024 bytes: truncation must not make it match.
	if ok, err := h.Verify(ctx, enc, long+"b"); ok || err != nil {
		t.Errorf("over-long password: %v, %v", ok, err)
	}
	if _, err := h.Hash(ctx, long+"b"); err == nil {
		t.Error("hashing an over-long password succeeded")
	}
}

func TestArgon2idParams(t *testing.T) {
	h, err := NewArgon2id(Params{}, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if h.Params() != DefaultParams {
		t.Errorf("defaults = %+v", h.Params())
	}
	for _, p := range []Params{
		{Time: 1, MemoryKiB: 1024, Threads: 1},        // too little memory
		{Time: 1, MemoryKiB: 4 << 20, Threads: 1},     // too much
		{Time: 1000, MemoryKiB: 8 * 1024, Threads: 1}, // too slow
	} {
		if _, err := NewArgon2id(p, 1, 0); err == nil {
			t.Errorf("%+v accepted", p)
		}
	}
}

// TestArgon2idConcurrencyBound: when every slot is busy, a hash waits,
// and gives up with its context.
func TestArgon2idConcurrencyBound(t *testing.T) {
	h, err := NewArgon2id(testParams, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	h.slots <- struct{}{} // occupy the only slot
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := h.Hash(ctx, "x"); err == nil {
		t.Error("hash ran although no slot was free")
	}
	if _, err := h.Verify(ctx, "$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHQ$"+strings.Repeat("A", 43), "x"); err == nil {
		t.Error("verify ran although no slot was free")
	}
	<-h.slots
	if _, err := h.Hash(context.Background(), "x"); err != nil {
		t.Errorf("after release: %v", err)
	}
}

func BenchmarkArgon2idDefault(b *testing.B) {
	h, err := NewArgon2id(DefaultParams, 0, 0)
	if err != nil {
		b.Fatal(err)
	}
	enc, _ := h.Hash(context.Background(), "benchmark password")
	b.ResetTimer()
	for b.Loop() {
		_, _ = h.Verify(context.Background(), enc, "benchmark password")
	}
}

// TestArgon2idQueueBound: with every slot and queue place taken, Hash and
// Verify fail at once with ErrBusy instead of waiting.
func TestArgon2idQueueBound(t *testing.T) {
	h, err := NewArgon2id(testParams, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := h.Hash(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		h.admit <- struct{}{}
	}
	if _, err := h.Hash(context.Background(), "x"); !errors.Is(err, ErrBusy) {
		t.Errorf("hash with a full queue: %v", err)
	}
	if _, err := h.Verify(context.Background(), enc, "x"); !errors.Is(err, ErrBusy) {
		t.Errorf("verify with a full queue: %v", err)
	}
	<-h.admit
	if ok, err := h.Verify(context.Background(), enc, "x"); err != nil || !ok {
		t.Errorf("after a place freed: %v %v", ok, err)
	}
}
