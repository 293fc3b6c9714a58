package store

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestFlashTakenOnceAcrossStores: a flash put through one process is
// taken through another, once, even when both race for it.
func TestFlashTakenOnceAcrossStores(t *testing.T) {
	for name, p := range replicaPairs(t) {
		t.Run(name, func(t *testing.T) {
			a, b := p[0], p[1]
			mkOrg(t, a, "acme")
			id := []byte("id-hash")
			must(t, a.PutFlash("acme", "sess", id, []byte("sealed"), time.Now().Add(time.Minute), 4))
			if _, err := b.TakeFlash("acme", "sess", []byte("other")); !errors.Is(err, ErrNotFound) {
				t.Fatalf("a wrong ID: %v", err)
			}
			got, err := b.TakeFlash("acme", "sess", id)
			if err != nil || !bytes.Equal(got, []byte("sealed")) {
				t.Fatalf("take on the other store: %q %v", got, err)
			}
			if _, err := a.TakeFlash("acme", "sess", id); !errors.Is(err, ErrNotFound) {
				t.Fatalf("second take: %v", err)
			}
			for round := range 3 {
				must(t, a.PutFlash("acme", "sess", id, []byte(fmt.Sprint(round)), time.Now().Add(time.Minute), 4))
				var n atomic.Int32
				var wg sync.WaitGroup
				for i := range 8 {
					wg.Go(func() {
						_, err := p[i%2].TakeFlash("acme", "sess", id)
						switch {
						case err == nil:
							n.Add(1)
						case !errors.Is(err, ErrNotFound):
							t.Error(err)
						}
					})
				}
				wg.Wait()
				if n.Load() != 1 {
					t.Fatalf("round %d: taken %d times", round, n.Load())
				}
			}
			// Expired flashes are not given, and the bound per org holds.
			must(t, a.PutFlash("acme", "old", id, []byte("x"), time.Now().Add(-time.Second), 4))
			if _, err := b.TakeFlash("acme", "old", id); !errors.Is(err, ErrNotFound) {
				t.Fatalf("an expired flash: %v", err)
			}
			for i := range 10 {
				must(t, p[i%2].PutFlash("acme", fmt.Sprint("s", i), id, []byte("x"), time.Now().Add(time.Duration(i+1)*time.Minute), 4))
			}
			kept := 0
			for i := range 10 {
				if _, err := a.TakeFlash("acme", fmt.Sprint("s", i), id); err == nil {
					kept++
					if i < 6 {
						t.Errorf("flash %d kept beyond the org's 4", i)
					}
				}
			}
			if kept != 4 {
				t.Errorf("%d flashes kept, bound 4", kept)
			}
			if err := a.PutFlash("nosuch", "s", id, []byte("x"), time.Now().Add(time.Minute), 4); !errors.Is(err, ErrNotFound) {
				t.Errorf("a flash for a missing org: %v", err)
			}
		})
	}
}
