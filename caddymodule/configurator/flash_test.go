package configurator

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ssogate/ssogate/store"
)

// text is a Flash of one string.
type text struct {
	S string `json:"s"`
}

func (t *text) Detach() int { return len(t.S) }

// flashEnv is a store with organizations, and two Flashes on it: two
// gateway processes on one backend, as far as flashes can tell.
type flashEnv struct {
	dir    string
	st     *store.Store
	f1, f2 *Flashes
}

func newFlashEnv(t *testing.T, orgs ...string) *flashEnv {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	for _, o := range orgs {
		if err := st.CreateOrg(&store.Org{ID: o, Name: o}); err != nil {
			t.Fatal(err)
		}
	}
	return &flashEnv{dir: dir, st: st, f1: NewFlashes(st), f2: NewFlashes(st)}
}

// browserKey stands for a session cookie's browser secret.
func browserKey(t *testing.T) []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func put(t *testing.T, f *Flashes, org, session string, key []byte, v string) string {
	t.Helper()
	id, err := f.Put(org, session, key, &text{v})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func took(t *testing.T, f *Flashes, org, session string, key []byte, id string) string {
	t.Helper()
	var v text
	ok, err := f.Take(org, session, key, id, &v)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return ""
	}
	return v.S
}

// TestFlashesShownOnceAcrossProcesses: a flash put by one process is
// taken by another (the redirect landed elsewhere), once, and only by
// the session and browser it was made for.
func TestFlashesShownOnceAcrossProcesses(t *testing.T) {
	e := newFlashEnv(t, "oo")
	k := browserKey(t)
	id := put(t, e.f1, "oo", "s1", k, "token")
	if v := took(t, e.f2, "oo", "s2", k, id); v != "" {
		t.Errorf("another session read the flash: %v", v)
	}
	if v := took(t, e.f2, "oo", "s1", k, id+"x"); v != "" {
		t.Errorf("a wrong ID read the flash: %v", v)
	}
	if v := took(t, e.f2, "oo", "s1", k, id); v != "token" {
		t.Errorf("first read on the other process: %q", v)
	}
	if v := took(t, e.f1, "oo", "s1", k, id); v != "" {
		t.Errorf("second read (a reload) on the first process: %v", v)
	}
	if v := took(t, e.f1, "oo", "s1", k, ""); v != "" {
		t.Errorf("empty ID: %v", v)
	}
	// Sealed for one browser, a flash does not open with another's key.
	id = put(t, e.f1, "oo", "s1", k, "token")
	if v := took(t, e.f2, "oo", "s1", browserKey(t), id); v != "" {
		t.Errorf("another browser's key opened the flash: %v", v)
	}
	if _, err := e.f1.Put("oo", "s1", nil, &text{"x"}); err == nil {
		t.Error("a flash was kept without a key to seal it")
	}
}

// TestFlashTakenOnceUnderRace: requests racing for one flash on several
// processes: exactly one gets it.
func TestFlashTakenOnceUnderRace(t *testing.T) {
	e := newFlashEnv(t, "oo")
	k := browserKey(t)
	for round := range 5 {
		id := put(t, e.f1, "oo", "s", k, fmt.Sprint("token", round))
		var got atomic.Int32
		var wg sync.WaitGroup
		for i := range 8 {
			f := e.f1
			if i%2 == 1 {
				f = e.f2
			}
			wg.Go(func() {
				var v text
				ok, err := f.Take("oo", "s", k, id, &v)
				if err != nil {
					t.Error(err)
				}
				if ok {
					got.Add(1)
				}
			})
		}
		wg.Wait()
		if n := got.Load(); n != 1 {
			t.Fatalf("round %d: the flash was shown %d times", round, n)
		}
	}
}

// TestFlashNoSecretAtRest: the store's files never hold a flash's
// secret in the clear (they hold it sealed with a key only the
// browser's cookie gives).
func TestFlashNoSecretAtRest(t *testing.T) {
	e := newFlashEnv(t, "oo")
	// Random, so that the store's compression cannot hide a clear copy.
	secret := "scim-token-" + base64.RawURLEncoding.EncodeToString(browserKey(t))
	id := put(t, e.f1, "oo", "s", browserKey(t), secret)
	if id == "" {
		t.Fatal("no ID")
	}
	if err := e.st.Close(); err != nil {
		t.Fatal(err)
	}
	found := 0
	err := filepath.WalkDir(e.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, needle := range clearForms(secret) {
			if bytes.Contains(b, needle) {
				t.Errorf("%s holds the secret in the clear", filepath.Base(p))
			}
		}
		found++
		return nil
	})
	if err != nil || found == 0 {
		t.Fatalf("walking the store: %v (%d files)", err, found)
	}
}

// clearForms are the ways a secret shows in a file unsealed: as itself,
// or base64-encoded (a []byte in JSON) at any alignment.
func clearForms(secret string) [][]byte {
	forms := [][]byte{[]byte(secret)}
	for shift := range 3 {
		enc := base64.StdEncoding.EncodeToString(append(make([]byte, shift), secret...))
		forms = append(forms, []byte(enc[4:len(enc)-4]))
	}
	return forms
}

func TestFlashesOneSlotPerSession(t *testing.T) {
	e := newFlashEnv(t, "oo")
	k := browserKey(t)
	old := put(t, e.f1, "oo", "s", k, "first")
	cur := put(t, e.f2, "oo", "s", k, "second")
	if v := took(t, e.f1, "oo", "s", k, old); v != "" {
		t.Errorf("replaced flash still readable: %v", v)
	}
	if v := took(t, e.f1, "oo", "s", k, cur); v != "second" {
		t.Errorf("current flash: %v", v)
	}
}

// TestFlashesOrgEvictsOnlyItsOwn: one tenant's admin with many sessions
// cannot push out another tenant's flash, such as a SCIM token that
// admin is about to be shown once.
func TestFlashesOrgEvictsOnlyItsOwn(t *testing.T) {
	e := newFlashEnv(t, "victim", "noisy")
	k := browserKey(t)
	token := put(t, e.f1, "victim", "v", k, "scim-token")
	var ids []string
	for i := range 3 * maxOrgFlashes {
		ids = append(ids, put(t, e.f1, "noisy", fmt.Sprint("n", i), k, "x"))
	}
	kept := 0
	for i, id := range ids {
		if took(t, e.f2, "noisy", fmt.Sprint("n", i), k, id) == "x" {
			kept++
			if i < len(ids)-maxOrgFlashes {
				t.Errorf("flash %d kept beyond the org's share", i)
			}
		}
	}
	if kept != maxOrgFlashes {
		t.Errorf("one org kept %d flashes, its share is %d", kept, maxOrgFlashes)
	}
	if v := took(t, e.f2, "victim", "v", k, token); v != "scim-token" {
		t.Errorf("another org's flash was evicted")
	}
}

// TestFlashesBounded: a flash over the size bound is refused, and a
// flash needs an existing organization.
func TestFlashesBounded(t *testing.T) {
	e := newFlashEnv(t, "oo")
	k := browserKey(t)
	if _, err := e.f1.Put("oo", "huge", k, &text{strings.Repeat("h", maxFlashBytes)}); err == nil {
		t.Errorf("a flash over maxFlashBytes was kept")
	}
	if _, err := e.f1.Put("gone", "s", k, &text{"x"}); err == nil {
		t.Errorf("a flash was kept for an organization that does not exist")
	}
	big := strings.Repeat("<m\"", (maxFlashBytes-flashOverhead)/3)
	// Control characters are what JSON escapes most (sixfold).
	if _, err := e.f1.Put("oo", "s", k, &text{strings.Repeat("\x01", maxFlashBytes-flashOverhead)}); err != nil {
		t.Errorf("a flash at the bound that JSON escapes sixfold: %v", err)
	}
	id := put(t, e.f1, "oo", "s", k, big)
	if v := took(t, e.f2, "oo", "s", k, id); v != big {
		t.Errorf("a flash at the bound came back with %d bytes", len(v))
	}
}

func TestOwnMessage(t *testing.T) {
	long := strings.Repeat("é", MaxMessage)
	got := OwnMessage(long)
	if len(got) > MaxMessage || !strings.HasSuffix(got, "…") || !strings.HasPrefix(got, "éé") {
		t.Errorf("cut message: %d bytes, %q…", len(got), got[:8])
	}
	if Own(strings.Repeat("a", MaxShortEcho+1), MaxShortEcho) != "" || Own("abc", MaxShortEcho) != "abc" {
		t.Errorf("Own does not keep short input and drop long input")
	}
}
