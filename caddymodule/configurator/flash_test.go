package configurator

import (
	"fmt"
	"strings"
	"testing"
)

// text is a Flash of one string.
type text struct{ s string }

func (t *text) Detach() int {
	t.s = strings.Clone(t.s)
	return len(t.s)
}

func put(t *testing.T, f *Flashes, org, session, v string) string {
	t.Helper()
	id, err := f.Put(org, session, &text{v})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func took(f *Flashes, session, id string) string {
	if v, ok := f.Take(session, id).(*text); ok {
		return v.s
	}
	return ""
}

func TestFlashesShownOnce(t *testing.T) {
	f := NewFlashes()
	id := put(t, f, "o", "s1", "token")
	if v := took(f, "s2", id); v != "" {
		t.Errorf("another session read the flash: %v", v)
	}
	if v := took(f, "s1", id+"x"); v != "" {
		t.Errorf("a wrong ID read the flash: %v", v)
	}
	if v := took(f, "s1", id); v != "token" {
		t.Errorf("first read: %v", v)
	}
	if v := took(f, "s1", id); v != "" {
		t.Errorf("second read (a reload): %v", v)
	}
	if v := f.Take("s1", ""); v != nil {
		t.Errorf("empty ID: %v", v)
	}
	if f.bytes != 0 || len(f.orgs) != 0 {
		t.Errorf("an empty store accounts %d bytes, %d orgs", f.bytes, len(f.orgs))
	}
}

func TestFlashesOneSlotPerSession(t *testing.T) {
	f := NewFlashes()
	old := put(t, f, "o", "s", "first")
	cur := put(t, f, "o", "s", "second")
	if v := took(f, "s", old); v != "" {
		t.Errorf("replaced flash still readable: %v", v)
	}
	if v := took(f, "s", cur); v != "second" {
		t.Errorf("current flash: %v", v)
	}
}

// TestFlashesOrgEvictsOnlyItsOwn: one tenant's admin with many sessions
// (or many tenants' admins) cannot push out another tenant's flash, such
// as a SCIM token that admin is about to be shown once.
func TestFlashesOrgEvictsOnlyItsOwn(t *testing.T) {
	f := NewFlashes()
	token := put(t, f, "victim", "v", "scim-token")
	var ids []string
	for i := range maxFlashes + 100 {
		ids = append(ids, put(t, f, "noisy", fmt.Sprint("n", i), "x"))
	}
	if n := f.orgs["noisy"].n; n != maxOrgFlashes {
		t.Errorf("one org keeps %d flashes, its share is %d", n, maxOrgFlashes)
	}
	if v := took(f, "n0", ids[0]); v != "" {
		t.Errorf("the org's oldest flash was kept beyond its share")
	}
	if v := took(f, fmt.Sprint("n", len(ids)-1), ids[len(ids)-1]); v != "x" {
		t.Errorf("the org's newest flash was evicted")
	}
	if v := took(f, "v", token); v != "scim-token" {
		t.Errorf("another org's flash was evicted")
	}
}

// TestFlashesBounded: however many orgs post, the store keeps at most
// maxFlashes and maxTotalBytes, and the one holding the most gives way.
func TestFlashesBounded(t *testing.T) {
	f := NewFlashes()
	small := put(t, f, "small", "s", "token")
	big := strings.Repeat("m", maxFlashBytes-flashOverhead)
	for i := range maxTotalBytes/maxFlashBytes + 50 {
		put(t, f, fmt.Sprint("org", i/maxOrgFlashes), fmt.Sprint("b", i), big)
		if f.bytes > maxTotalBytes {
			t.Fatalf("%d bytes kept, budget is %d", f.bytes, maxTotalBytes)
		}
	}
	if v := took(f, "s", small); v != "token" {
		t.Errorf("the org holding least lost its flash")
	}
	for i := range maxFlashes + 100 {
		put(t, f, fmt.Sprint("org", i), fmt.Sprint("c", i), "x")
	}
	if n := len(f.m); n > maxFlashes {
		t.Errorf("%d flashes kept, bound is %d", n, maxFlashes)
	}
	sum := 0
	for _, e := range f.m {
		sum += e.size
	}
	if sum != f.bytes {
		t.Errorf("accounted %d bytes, entries hold %d", f.bytes, sum)
	}
	if _, err := f.Put("o", "huge", &text{strings.Repeat("h", maxFlashBytes)}); err == nil {
		t.Errorf("a flash over maxFlashBytes was kept")
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
