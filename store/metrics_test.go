package store

import (
	"sync"
	"testing"
	"time"
)

func TestCountSessions(t *testing.T) {
	s, u := sessionFixture(t)
	exp := time.Now().Add(time.Hour)
	for _, id := range []string{"a", "b", "c"} {
		must(t, s.CreateSession(&Session{ID: id, OrgID: "acme", UserID: u.ID, AuthMethod: "saml", ExpiresAt: exp}))
	}
	if n, err := s.CountSessions(); err != nil || n != 3 {
		t.Fatalf("CountSessions = %d, %v; want 3", n, err)
	}
	must(t, s.DeleteSession("b"))
	if n, err := s.CountSessions(); err != nil || n != 2 {
		t.Fatalf("after a delete: %d, %v; want 2", n, err)
	}
}

func TestObserveWriteSeesOperations(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	s, err := Open(t.TempDir(), Options{GCInterval: -1, ObserveWrite: func(op string, d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		if d < 0 {
			t.Errorf("%s: negative duration", op)
		}
		seen[op]++
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.GetOrCreateSecret("x", func() ([]byte, error) { return []byte("v"), nil }); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if seen["get or create secret"] != 1 {
		t.Errorf("observed %v", seen)
	}
}
