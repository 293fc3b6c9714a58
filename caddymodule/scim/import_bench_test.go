package scim

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
	"github.com/ssogate/ssogate/store/pgtest"
)

// BenchmarkSCIMImport is an IdP's initial import: it creates users one
// POST /Users at a time over HTTP into an empty organization, as Okta
// does (concurrency=1), and a few at a time, as Entra ID does
// (concurrency=4), up to SSOGATE_IMPORT_USERS users (default 100,000).
// It runs on Badger, then on PostgreSQL (pgtest's server; skipped
// without one). It reports the rate of each tenth of the import (users/s@10k is the
// rate from 0 to 10k users, users/s@100k from 90k to 100k), so that a
// rate falling with the directory's size shows. Each sub-benchmark
// imports once, whatever b.N: run it with -benchtime 1x. With
// SSOGATE_IMPORT_PROFILE=file, the second half of the import is
// CPU-profiled into file.<backend>.<concurrency>; with also
// SSOGATE_IMPORT_PROFILE_TENTHS=1,10 (say), each tenth named is profiled
// on its own into file.<backend>.<concurrency>.<tenth>, to compare what
// a creation costs in an empty and in a full store. On Badger each
// tenth's line also shows the LSM tree's shape. Runs only when named
// (-bench BenchmarkSCIMImport): it writes 100k users four times.
func BenchmarkSCIMImport(b *testing.B) {
	if f := flag.Lookup("test.bench"); f == nil || !strings.Contains(f.Value.String(), "SCIMImport") {
		b.Skip("imports 100k users several times: runs only when named (-bench BenchmarkSCIMImport)")
	}
	total := 100_000
	if v := os.Getenv("SSOGATE_IMPORT_USERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 10 {
			b.Fatalf("SSOGATE_IMPORT_USERS=%q: want a number of at least 10", v)
		}
		total = n
	}
	for _, backend := range []string{"badger", "postgres"} {
		for _, conc := range []int{1, 4} {
			b.Run(fmt.Sprintf("%s/concurrency=%d", backend, conc), func(b *testing.B) {
				importUsers(b, backend, total, conc)
			})
		}
	}
}

// TestMain stops the PostgreSQL server that pgtest may have started for
// the benchmark.
func TestMain(m *testing.M) { pgtest.Main(m) }

func importUsers(b *testing.B, backend string, total, conc int) {
	var commits atomic.Int64
	// The creations' write transactions, timed (their synced commit
	// included): the median per tenth tells a slower commit from slower
	// work around it.
	var createsMu sync.Mutex
	var creates []time.Duration
	opts := store.Options{ObserveWrite: func(op string, d time.Duration) {
		commits.Add(1)
		if op == "provision user" {
			createsMu.Lock()
			creates = append(creates, d)
			createsMu.Unlock()
		}
	}}
	var be store.Backend // nil: Badger in a temporary directory
	if backend == "postgres" {
		be = postgresBackend(b, "", "")
	}
	e := newEnvWith(b, opts, be, func(c *Config) {
		c.Now = time.Now // token touches and audit times as in production
		c.Limits.MaxUsers = total
	})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc}}
	defer client.CloseIdleConnections()
	target := e.http.URL + testPrefix + "/scim/acme/v2/Users"
	create := func(i int) error {
		body, err := json.Marshal(oktaUser(fmt.Sprintf("user%07d@acme.example", i)))
		if err != nil {
			return err
		}
		req, err := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+e.tokens["acme"])
		req.Header.Set("Content-Type", "application/scim+json")
		res, err := client.Do(req)
		if err != nil {
			return err
		}
		var out bytes.Buffer
		_, err = out.ReadFrom(res.Body)
		res.Body.Close()
		if err != nil {
			return err
		}
		if res.StatusCode != http.StatusCreated {
			return fmt.Errorf("user %d: status %d: %s", i, res.StatusCode, out.Bytes())
		}
		return nil
	}

	step := total / 10
	profile := os.Getenv("SSOGATE_IMPORT_PROFILE")
	var tenths map[int]bool // nil: profile the second half as a whole
	if v := os.Getenv("SSOGATE_IMPORT_PROFILE_TENTHS"); v != "" {
		tenths = map[int]bool{}
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 || n > 10 {
				b.Fatalf("SSOGATE_IMPORT_PROFILE_TENTHS=%q: want tenths from 1 to 10, comma-separated", v)
			}
			tenths[n] = true
		}
	}
	shape, _ := e.store.Backend().(interface{ LSMShape() string })
	var next atomic.Int64
	var failed atomic.Bool
	b.ResetTimer()
	for s := range 10 {
		end := int64(total)
		if s < 9 {
			end = int64((s + 1) * step)
		}
		stopProfile := func() {}
		switch {
		case profile != "" && tenths != nil && tenths[s+1]:
			stopProfile = startProfile(b, fmt.Sprintf("%s.%s.%d.%d", profile, backend, conc, s+1))
		case profile != "" && tenths == nil && s == 5:
			defer startProfile(b, fmt.Sprintf("%s.%s.%d", profile, backend, conc))()
		}
		from := next.Load()
		commits0, cpu0 := commits.Load(), cpuTime()
		start := time.Now()
		var wg sync.WaitGroup
		for range conc {
			wg.Go(func() {
				for i := next.Add(1) - 1; i < end && !failed.Load(); i = next.Add(1) - 1 {
					if err := create(int(i)); err != nil {
						failed.Store(true)
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		stopProfile()
		if failed.Load() {
			b.FailNow()
		}
		next.Store(end)
		n := float64(end - from)
		rate := n / time.Since(start).Seconds()
		b.ReportMetric(rate, fmt.Sprintf("users/s@%03dk", end/1000))
		cpu := float64(cpuTime()-cpu0) / float64(time.Millisecond) / n
		perUser := float64(commits.Load()-commits0) / n
		// Printed rather than logged: a benchmark's log is cut at ten
		// lines.
		lsm := ""
		if shape != nil {
			lsm = ", " + shape.LSMShape()
		}
		createsMu.Lock()
		slices.Sort(creates)
		var median time.Duration
		if len(creates) > 0 {
			median = creates[len(creates)/2].Round(10 * time.Microsecond)
		}
		creates = creates[:0]
		createsMu.Unlock()
		fmt.Printf("%s/concurrency=%d %6d users: %5.0f users/s, %.2f ms CPU and %.2f write transactions per user, creation's write %v (median), disk sync %v%s\n",
			backend, conc, end, rate, cpu, perUser, median, syncLatency(b), lsm)
	}
	b.StopTimer()
	if n, err := e.store.CountUsers("acme"); err != nil || n != total {
		b.Fatalf("the organization has %d users, want %d (%v)", n, total, err)
	}
}

// startProfile CPU-profiles into file until the function it returns is
// called.
func startProfile(b *testing.B, file string) func() {
	f, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Error(err)
		}
	}
}

// cpuTime is the CPU time the process has used (server, client and
// Badger's background work alike).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// syncLatency is the median time of a 4 KiB write plus fdatasync in a
// temporary file: the floor under a synced commit on this disk, right
// now (the machine is shared, so it varies between steps).
func syncLatency(b *testing.B) time.Duration {
	f, err := os.CreateTemp(b.TempDir(), "sync")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	var ds []time.Duration
	for range 50 {
		start := time.Now()
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	return ds[len(ds)/2].Round(10 * time.Microsecond)
}
