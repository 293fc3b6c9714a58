package scim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
)

// TestWorstParallelRequestsOfOneTenant measures what one tenant's worst
// requests, sent 96 at a time, add to the process's memory: list and
// read groups of the maximum membership, list users of the maximum size,
// send bodies of the maximum size (member additions, attributes over the
// caps, nested filters). The target is less than 256 MB; before
// the limits, 5 concurrent user lists alone took 3 GB.
//
// The bound is on anonymous memory (the Go heap and stacks), sampled
// while the requests run. The total peak (the kernel's VmHWM) is logged
// too: it also counts the pages of Badger's memory-mapped value log and
// memtable files that the reads and writes touch, which are page cache
// (reclaimable, shared with the kernel) and Badger's to bound, not the
// request handling's. Skipped with -short: the setup writes 50,000 users.
func TestWorstParallelRequestsOfOneTenant(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 50,000 users")
	}
	if _, err := os.Stat("/proc/self/clear_refs"); err != nil {
		t.Skip("needs Linux's /proc to measure the peak RSS")
	}
	lim := Limits{}
	if v := os.Getenv("SCIM_MEM_CONC"); v != "" {
		lim.MaxConcurrent, _ = strconv.Atoi(v)
	}
	if v := os.Getenv("SCIM_MEM_BODY"); v != "" {
		lim.MaxRequestBytes, _ = strconv.ParseInt(v, 10, 64)
	}
	lim = lim.WithDefaults()
	e := newEnv(t, func(c *Config) { c.Limits = lim })
	ids := loadMembers(t, e.store, "acme", DefaultMaxGroupMembers)
	var groups []string
	for i := range 3 {
		g := &store.Group{OrgID: "acme", DisplayName: fmt.Sprintf("All %d", i), Members: ids}
		if err := e.store.CreateGroup(g); err != nil {
			t.Fatal(err)
		}
		groups = append(groups, g.ID)
	}
	// 100 users of nearly the maximum size.
	var fat []string
	for i := range 100 {
		addresses := make([]any, 60)
		for j := range addresses {
			addresses[j] = map[string]any{"formatted": fmt.Sprint(j) + strings.Repeat("a", 1000)}
		}
		fat = append(fat, e.createUser("acme", fmt.Sprintf("fat%d@acme.com", i), map[string]any{"addresses": addresses}))
	}

	// Bodies of the maximum size.
	var adds bytes.Buffer
	adds.WriteString(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[`)
	for i := 0; adds.Len() < int(lim.MaxRequestBytes)-100; i++ {
		if i > 0 {
			adds.WriteByte(',')
		}
		fmt.Fprintf(&adds, `{"value":%q}`, ids[i%len(ids)])
	}
	adds.WriteString(`]}]}`)
	bigTitle, _ := json.Marshal(map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": "fat0@acme.com",
		"title": strings.Repeat("t", int(lim.MaxRequestBytes)-200)})
	nestedFilter := searchBody(nested("(", `userName eq "x"`, ")", int(lim.MaxRequestBytes)/2-100))
	type req struct{ method, path, body string }
	worst := []req{
		{http.MethodGet, "/Groups?count=100", ""},
		{http.MethodGet, "/Groups/" + groups[0], ""},
		{http.MethodGet, "/Users?count=100", ""},
		{http.MethodPatch, "/Groups/" + groups[1], adds.String()},
		{http.MethodPut, "/Users/" + fat[0], string(bigTitle)},
		{http.MethodPost, "/Users/.search", nestedFilter},
	}

	if only := os.Getenv("SCIM_MEM_ONLY"); only != "" {
		i, _ := strconv.Atoi(only)
		worst = worst[i : i+1]
	}
	settleHeap(t)
	runtime.GC()
	debug.FreeOSMemory()
	base := procStatus(t, "VmRSS")
	t.Logf("before: RSS %d MiB = anonymous %d MiB + files %d MiB", base>>20, procStatus(t, "RssAnon")>>20, procStatus(t, "RssFile")>>20)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("live heap %d MiB, next GC at %d MiB, Go heap reserved %d MiB", ms.HeapAlloc>>20, ms.NextGC>>20, ms.HeapSys>>20)
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Skipf("cannot reset the peak RSS: %v", err)
	}
	anonBase := procStatus(t, "RssAnon")
	var anonPeak int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			anonPeak = max(anonPeak, procStatusOr(0, "RssAnon"))
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	const clients, rounds = 96, 3
	statuses := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				w := worst[(c+i)%len(worst)]
				status := e.discard("acme", w.method, w.path, w.body)
				mu.Lock()
				statuses[status]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-sampled
	peak := procStatus(t, "VmHWM")
	t.Logf("now: RSS %d MiB = anonymous %d MiB + files %d MiB", procStatus(t, "VmRSS")>>20, procStatus(t, "RssAnon")>>20, procStatus(t, "RssFile")>>20)
	t.Logf("%d requests (%d at a time) in %v: statuses %v", clients*rounds, clients, time.Since(start).Round(time.Millisecond), statuses)
	t.Logf("RSS before %d MiB, peak %d MiB: +%d MiB", base>>20, peak>>20, (peak-base)>>20)
	if statuses[http.StatusInternalServerError] > 0 {
		t.Errorf("5xx answers: %v", statuses)
	}
	t.Logf("anonymous memory before %d MiB, peak %d MiB: +%d MiB", anonBase>>20, anonPeak>>20, (anonPeak-anonBase)>>20)
	if anonPeak-anonBase > 256<<20 {
		t.Errorf("anonymous memory rose by %d MiB, more than 256", (anonPeak-anonBase)>>20)
	}
}

// settleHeap waits, up to a minute, until the live heap has stopped
// shrinking for two seconds. Badger's memtables are Go heap, and the
// set-up's writes can leave several of them waiting for their flush for
// a few seconds (measured with 32 MiB memtables: 195 MiB live, 71 once
// flushed; the test then failed at +339 MiB, and passes at +184 once it
// waits). Measured from there, the baseline would include memory the
// requests do not use, and the garbage collector, which lets the heap
// grow in proportion to what is live, would let the requests' garbage
// grow with it.
func settleHeap(t *testing.T) {
	t.Helper()
	var ms runtime.MemStats
	live := func() uint64 {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	low, since := live(), time.Now()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		time.Sleep(250 * time.Millisecond)
		// Shrinking by more than 2 MiB restarts the wait.
		if h := live(); h+2<<20 < low {
			low, since = h, time.Now()
		}
		if time.Since(since) >= 2*time.Second {
			return
		}
	}
	t.Logf("the live heap was still shrinking after a minute (%d MiB)", low>>20)
}

// procStatus reads a size field of /proc/self/status, in bytes.
func procStatus(t *testing.T, field string) int64 {
	t.Helper()
	v := procStatusOr(-1, field)
	if v < 0 {
		t.Fatalf("no %s in /proc/self/status", field)
	}
	return v
}

func procStatusOr(def int64, field string) int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return def
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return def
			}
			return kb << 10
		}
	}
	return def
}

func loadMembers(t *testing.T, st *store.Store, org string, n int) []string {
	t.Helper()
	const batch = 1000
	ids := make([]string, 0, n)
	for from := 0; from < n; from += batch {
		var us []*store.User
		for i := from; i < min(from+batch, n); i++ {
			name := fmt.Sprintf("user%07d@acme.example", i)
			us = append(us, &store.User{OrgID: org, UserName: name, Active: true, Source: store.SourceSCIM,
				Emails: []store.Email{{Value: name, Type: "work", Primary: true}}})
		}
		if err := st.CreateUsers(us); err != nil {
			t.Fatal(err)
		}
		for _, u := range us {
			ids = append(ids, u.ID)
		}
	}
	return ids
}

// discard sends a request and reads the response into the void: the
// test's own decoding must not count toward the server's peak.
func (e *env) discard(org, method, path, body string) int {
	req, err := http.NewRequest(method, e.http.URL+testPrefix+"/scim/"+org+"/v2"+path, strings.NewReader(body))
	if err != nil {
		e.t.Error(err)
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+e.tokens[org])
	req.Header.Set("Content-Type", "application/scim+json")
	res, err := e.http.Client().Do(req)
	if err != nil {
		e.t.Error(err)
		return 0
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	return res.StatusCode
}
