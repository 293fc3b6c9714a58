package caddymodule_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssogate/ssogate/examples/demo"
)

// TestReloadUnderLoadFailsNoRequest posts changed configs to Caddy's admin
// /load endpoint while signed-in clients keep sending requests through the
// gateway (SPEC §8: "config reload under load fails no request"). Every
// request must reach the upstream with the user's identity, under
// whichever header names the config serving it uses, and the store must
// stay open throughout: the sso app logs "opened store" and "closed store"
// only when the shared handle is really opened or closed, and a log that
// this test adds to the reloaded configs must show neither (while it does
// show each reloaded config's server starting, so it is known to capture).
//
// One kind of failure is not ours and is sent again instead, as browsers
// do: a connection that the old server closes before sending any byte of
// a response. Caddy (v2.11.9) hands the listening socket from the old
// server to the new one; for a moment both accept on it, then the old one
// runs net/http's Server.Shutdown, which closes idle keep-alive
// connections and drops a request it reads after shutdown began without
// answering it (net/http conn.serve, golang/go#65802), on a reused or a
// freshly accepted connection alike. The same load against the same
// config without sso_gateway (reverse_proxy alone) loses about one
// request in a thousand this way. No handler can cause or prevent it:
// everything ssogate does shows up in a response.
func TestReloadUnderLoadFailsNoRequest(t *testing.T) {
	const (
		clients = 6
		reloads = 8
	)
	logPath := filepath.Join(t.TempDir(), "reloads.log")
	variants := []map[string]any{
		{"handler": "sso_gateway", "public_paths": []string{"/public/*"}},
		{"handler": "sso_gateway", "header_preset": "oauth2-proxy"},
		{"handler": "sso_gateway", "public_paths": []string{"/health"}, "headers": map[string]any{"email": "X-Sso-Reload-Email"}},
		{"handler": "sso_gateway"},
	}
	// Restore the suite's config (without this test's log) at the end.
	t.Cleanup(func() { loadGatewayConfig(t, map[string]any{"handler": "sso_gateway"}, nil) })

	var loaders []*browser
	for range clients {
		// Each client has its own connection pool, as browsers do.
		b := newBrowser(t)
		b.client.Transport = http.DefaultTransport.(*http.Transport).Clone()
		b.signIn(demo.AliceEmail, demo.DefaultPassword, "")
		signedIn(t, b)
		loaders = append(loaders, b)
	}

	ctx, stop := context.WithCancel(context.Background())
	var (
		wg       sync.WaitGroup
		sent     atomic.Int64
		resent   atomic.Int64
		failMu   sync.Mutex
		failures []string
	)
	fail := func(msg string) {
		failMu.Lock()
		defer failMu.Unlock()
		failures = append(failures, msg)
	}
	for i, b := range loaders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				// Mostly GETs, as browsers send; some POSTs, which no
				// client library retries on a dropped connection.
				method := http.MethodGet
				if n%4 == 3 {
					method = http.MethodPost
				}
				msg, dropped := identityRequest(b, method)
				for tries := 1; dropped && tries < 3; tries++ {
					// Dropped unanswered by the old server (see above).
					resent.Add(1)
					msg, dropped = identityRequest(b, method)
				}
				if msg != "" {
					fail(fmt.Sprintf("client %d request %d (%s): %s", i, n, method, msg))
				}
				sent.Add(1)
			}
		}()
	}

	loadsDone := 0
	for i := range reloads {
		time.Sleep(150 * time.Millisecond)
		if err := postLoad(reloadConfig(t, variants[i%len(variants)], logPath)); err != nil {
			t.Errorf("reload %d: %v", i, err)
			continue
		}
		loadsDone++
	}
	time.Sleep(150 * time.Millisecond)
	stop()
	wg.Wait()

	t.Logf("%d requests through %d reloads; %d sent again after the old server dropped them unanswered", sent.Load(), loadsDone, resent.Load())
	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed across reloads; first: %s", len(failures), sent.Load(), strings.Join(failures[:min(len(failures), 5)], "\n"))
	}
	if sent.Load() < int64(reloads*clients) {
		t.Errorf("only %d requests sent: the load did not overlap the reloads", sent.Load())
	}

	opened, closed, started := scanReloadLog(t, logPath)
	if opened != 0 || closed != 0 {
		t.Errorf("store opened %d and closed %d times during reloads, want 0: the handle was not shared", opened, closed)
	}
	if started != loadsDone {
		t.Errorf("the log saw %d of %d reloaded servers start: it does not capture what it checks", started, loadsDone)
	}
}

// identityRequest sends one request through the gateway and returns what
// is wrong with its answer, or "". dropped reports that the connection
// ended before any byte of a response came back.
func identityRequest(b *browser, method string) (msg string, dropped bool) {
	var reused, answered atomic.Bool
	trace := &httptrace.ClientTrace{
		GotConn:              func(info httptrace.GotConnInfo) { reused.Store(info.Reused) },
		GotFirstResponseByte: func() { answered.Store(true) },
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), method, env.GatewayURL+"/whoami", nil)
	if err != nil {
		return err.Error(), false
	}
	req.Header.Set("Accept", "application/json")
	resp, err := b.client.Do(req)
	if err != nil {
		return fmt.Sprintf("%v (reused connection: %v)", err, reused.Load()), !answered.Load()
	}
	return checkIdentityResponse(resp), false
}

func checkIdentityResponse(resp *http.Response) string {
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Sprintf("reading body: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(body))
	}
	var out struct {
		Headers map[string]string `json:"headers"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return fmt.Sprintf("upstream JSON: %v", err)
	}
	h := out.Headers
	if h["X-Sso-Email"] != demo.AliceEmail && h["X-Forwarded-Email"] != demo.AliceEmail && h["X-Sso-Reload-Email"] != demo.AliceEmail {
		return fmt.Sprintf("no identity headers: %v", h)
	}
	return ""
}

// reloadConfig is the suite's Caddy config with gw as the sso_gateway
// handler and a log that records the store's open/close lines and the
// http app's server starts to logPath. (Named loggers of the sso app and
// of the http app write to every log that includes them; caddy.Log(),
// which the admin API uses, writes only to the default log.)
func reloadConfig(t *testing.T, gw map[string]any, logPath string) []byte {
	t.Helper()
	var cfg map[string]any
	if err := json.Unmarshal(env.CaddyConfig(), &cfg); err != nil {
		t.Fatal(err)
	}
	srv := cfg["apps"].(map[string]any)["http"].(map[string]any)["servers"].(map[string]any)["gateway"].(map[string]any)
	srv["routes"].([]any)[0].(map[string]any)["handle"].([]any)[0] = gw
	cfg["logging"].(map[string]any)["logs"].(map[string]any)["reload_watch"] = map[string]any{
		"writer":  map[string]any{"output": "file", "filename": logPath},
		"encoder": map[string]any{"format": "json"},
		"level":   "INFO",
		"include": []string{"sso.store", "http.log"},
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// postLoad replaces the running config through the admin API, as
// `caddy reload` does.
func postLoad(cfg []byte) error {
	resp, err := http.Post(env.AdminURL+"/load", "application/json", bytes.NewReader(cfg))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("POST /load: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

// scanReloadLog counts the store's open and close lines and the gateway
// server's starts in the test's log.
func scanReloadLog(t *testing.T, path string) (opened, closed, started int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("the reload log was never written: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e struct {
			Logger string `json:"logger"`
			Msg    string `json:"msg"`
			Name   string `json:"name"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		switch {
		case e.Logger == "sso.store" && e.Msg == "opened store":
			opened++
		case e.Logger == "sso.store" && e.Msg == "closed store":
			closed++
		case e.Logger == "http.log" && e.Msg == "server running" && e.Name == "gateway":
			started++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return opened, closed, started
}
