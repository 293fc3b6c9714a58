package store

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store/pgtest"
)

// BenchmarkExportImport measures the portable export and import of one
// organization of n users (and a group of every tenth of them) from
// Badger, into Badger or PostgreSQL:
// users per second each way, and how far the heap grew above where it
// was while importing (bounded memory: it must not grow with n).
//
//	go test ./store -run '^$' -bench BenchmarkExportImport -benchtime 1x
func BenchmarkExportImport(b *testing.B) {
	for _, c := range []struct {
		n  int
		pg bool
	}{{10_000, false}, {100_000, false}, {100_000, true}} {
		n := c.n
		dstName := "badger"
		if c.pg {
			dstName = "postgres"
		}
		b.Run(fmt.Sprintf("users=%d/into=%s", n, dstName), func(b *testing.B) {
			src := newBadgerTestStore(b)
			mkOrg(b, src, "bench")
			bulkLoadUsers(b, src, "bench", n, func(i int) string { return fmt.Sprintf("user%07d", i) })
			users, _, err := src.ListUsers("bench", 0, -1)
			must(b, err)
			var members []string
			for i := 0; i < len(users); i += 10 {
				members = append(members, users[i].ID)
			}
			users = nil
			must(b, src.importGroup(&Group{ID: "everyone-tenth", OrgID: "bench", DisplayName: "Tenth", Members: members, Created: now(), Updated: now()}))
			file := filepath.Join(b.TempDir(), "export.jsonl")

			// checkTime is one checking pass alone: import runs it twice
			// (before writing, and again line by line as it writes).
			var exportTime, importTime, checkTime time.Duration
			var peak, checkPeak uint64
			for b.Loop() {
				f, err := os.Create(file)
				must(b, err)
				start := time.Now()
				_, err = src.Export(f, ExportOptions{WithSecrets: true})
				must(b, err)
				exportTime += time.Since(start)
				must(b, f.Close())

				in, err := os.Open(file)
				must(b, err)
				done := heapPeak(&checkPeak)
				start = time.Now()
				_, _, err = CheckExport(in)
				checkTime += time.Since(start)
				done()
				must(b, err)
				_, err = in.Seek(0, 0)
				must(b, err)

				dst := newBadgerTestStore(b)
				if c.pg {
					dst = newPostgresTestStore(b)
				}
				done = heapPeak(&peak)
				start = time.Now()
				stats, err := dst.Import(in, ImportOptions{})
				importTime += time.Since(start)
				done()
				must(b, err)
				must(b, in.Close())
				if stats.Stats[recUser] != n {
					b.Fatalf("imported %d users of %d", stats.Stats[recUser], n)
				}
				must(b, dst.Close())
			}
			per := float64(b.N * n)
			b.ReportMetric(per/exportTime.Seconds(), "export-users/s")
			b.ReportMetric(per/importTime.Seconds(), "import-users/s")
			b.ReportMetric(per/checkTime.Seconds(), "check-users/s")
			b.ReportMetric(float64(peak)/(1<<20), "import-heap-MiB")
			b.ReportMetric(float64(checkPeak)/(1<<20), "check-heap-MiB")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// heapPeak samples the live heap (as of the latest GC) until the returned
// function is called, keeping in *peak the most it grew above where it
// started; garbage not yet collected does not count.
func heapPeak(peak *uint64) func() {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	live := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	base := live()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if l := live(); l > base && l-base > *peak {
				*peak = l - base
			}
		}
	}()
	return func() { close(stop); wg.Wait() }
}

func newPostgresTestStore(t testing.TB) *Store {
	t.Helper()
	dsn, schema := pgtest.Schema(t)
	s, err := reopenStore(dsn+"\x00"+schema, Options{GCInterval: -1})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
