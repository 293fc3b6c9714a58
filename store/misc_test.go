package store

import (
	"bytes"
	"crypto/rand"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestAudit(t *testing.T) {
	s := newTestStore(t)
	wantErr(t, s.AppendAudit(&AuditEvent{OrgID: "acme"}), ErrInvalid)
	base := time.Now().Add(-time.Hour)
	for i, act := range []string{"first", "second", "third"} {
		must(t, s.AppendAudit(&AuditEvent{OrgID: "acme", Actor: "admin", Action: act, Outcome: "success", Time: base.Add(time.Duration(i) * time.Minute)}))
	}
	must(t, s.AppendAudit(&AuditEvent{OrgID: "acme-x", Action: "other-org"}))
	e := &AuditEvent{Action: "gateway", Details: map[string]string{"k": "v"}}
	must(t, s.AppendAudit(e))
	if e.ID == "" || e.Time.IsZero() {
		t.Fatalf("AppendAudit did not assign ID/Time: %+v", e)
	}

	ev, err := s.ListAudit("acme", 0)
	must(t, err)
	if len(ev) != 3 || ev[0].Action != "third" || ev[2].Action != "first" {
		t.Fatalf("ListAudit(acme) = %+v", ev)
	}
	ev, _ = s.ListAudit("acme", 2)
	if len(ev) != 2 || ev[0].Action != "third" {
		t.Fatalf("ListAudit limit = %+v", ev)
	}
	ev, _ = s.ListAudit("", 10)
	if len(ev) != 1 || ev[0].Action != "gateway" || ev[0].Details["k"] != "v" {
		t.Fatalf("ListAudit(gateway) = %+v", ev)
	}
}

func TestGetOrCreateSecretConcurrent(t *testing.T) {
	s := newTestStore(t)
	var calls atomic.Int32
	gen := func() ([]byte, error) {
		calls.Add(1)
		b := make([]byte, 32)
		_, err := rand.Read(b)
		return b, err
	}
	var mu sync.Mutex
	var got [][]byte
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			v, err := s.GetOrCreateSecret("session-key", gen)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			got = append(got, v)
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, v := range got[1:] {
		if !bytes.Equal(v, got[0]) {
			t.Fatal("concurrent callers got different secrets")
		}
	}
	got[0][0] ^= 0xff // a copy
	v, _ := s.GetOrCreateSecret("session-key", gen)
	if !bytes.Equal(v, got[1]) {
		t.Fatal("GetOrCreateSecret returned shared state")
	}
	other, _ := s.GetOrCreateSecret("signing-key", gen)
	if bytes.Equal(other, v) {
		t.Fatal("two secrets share a value")
	}

	boom := errors.New("no entropy")
	_, err := s.GetOrCreateSecret("broken", func() ([]byte, error) { return nil, boom })
	wantErr(t, err, boom)
	_, err = s.GetOrCreateSecret("empty", func() ([]byte, error) { return nil, nil })
	wantErr(t, err, ErrInvalid)
	// A failed generation stores nothing.
	v, err = s.GetOrCreateSecret("broken", func() ([]byte, error) { return []byte("ok"), nil })
	must(t, err)
	if string(v) != "ok" {
		t.Fatalf("secret = %q", v)
	}
}

func TestKeyEscaping(t *testing.T) {
	for _, seg := range []string{"", "plain", "a/b", "100%", "%2F", "a/%/b//"} {
		k := key("p", seg, "x")
		if n := bytes.Count(k, []byte("/")); n != 2 {
			t.Errorf("key(%q) = %q has %d slashes", seg, k, n)
		}
		if got := lastSegment(key("p", "x", seg)); got != seg {
			t.Errorf("lastSegment round trip %q -> %q", seg, got)
		}
	}
}

func TestTTLSecondsRoundsUp(t *testing.T) {
	at := time.Unix(1000, 1)
	if got := ttlSeconds(at); got != 1001 {
		t.Fatalf("ttlSeconds = %d", got)
	}
	if got := ttlSeconds(time.Unix(1000, 0)); got != 1000 {
		t.Fatalf("ttlSeconds = %d", got)
	}
}
