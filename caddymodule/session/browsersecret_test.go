package session

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestBrowserSecret: the secret is the same for every process with the
// cookie keys, differs per browser and per purpose, and needs the
// cookie.
func TestBrowserSecret(t *testing.T) {
	st := newStore(t)
	c := &clock{t: time.Now()}
	m1, m2 := newManager(t, st, c, keyA), newManager(t, st, c, keyA)
	r1, _ := start(t, m1, time.Time{})
	r2, _ := start(t, m1, time.Time{})
	s1, ok1 := m1.BrowserSecret(r1, "flash")
	s1b, ok2 := m2.BrowserSecret(r1, "flash")
	if !ok1 || !ok2 || len(s1) != 32 || !bytes.Equal(s1, s1b) {
		t.Fatalf("two managers with one key disagree: %x %x", s1, s1b)
	}
	if s2, _ := m1.BrowserSecret(r2, "flash"); bytes.Equal(s1, s2) {
		t.Error("two browsers share a secret")
	}
	if o, _ := m1.BrowserSecret(r1, "other"); bytes.Equal(s1, o) {
		t.Error("two purposes share a secret")
	}
	if _, ok := m1.BrowserSecret(httptest.NewRequest(http.MethodGet, "/", nil), "flash"); ok {
		t.Error("a secret without a cookie")
	}
	if _, ok := newManager(t, st, c, keyB).BrowserSecret(r1, "flash"); ok {
		t.Error("a secret from a cookie sealed with other keys")
	}
}
