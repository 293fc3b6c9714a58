package caddymodule_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/ssogate/ssogate/examples/demo"
)

// The tests of issue 10 §1: an operator's slip in the config stops the
// config from loading (the running one stays), instead of leaving the app
// open, failing at request time or quietly using a default.

// demoConfig is the demo's JSON config, to be changed and loaded.
func demoConfig(t *testing.T) map[string]any {
	t.Helper()
	var cfg map[string]any
	if err := json.Unmarshal(env.CaddyConfig(), &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func ssoApp(cfg map[string]any) map[string]any {
	return cfg["apps"].(map[string]any)["sso"].(map[string]any)
}

// demoServer is the gateway's server in cfg; its only route runs
// sso_gateway, then reverse_proxy.
func demoServer(cfg map[string]any) map[string]any {
	return cfg["apps"].(map[string]any)["http"].(map[string]any)["servers"].(map[string]any)["gateway"].(map[string]any)
}

func demoHandlers(cfg map[string]any) (gateway, proxy map[string]any) {
	h := demoServer(cfg)["routes"].([]any)[0].(map[string]any)["handle"].([]any)
	return h[0].(map[string]any), h[1].(map[string]any)
}

func marshal(t *testing.T, v any) []byte {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// wantRefused loads cfg and wants it refused with an error holding each
// of want.
func wantRefused(t *testing.T, cfg map[string]any, want ...string) string {
	t.Helper()
	err := caddy.Load(marshal(t, cfg), true)
	if err == nil {
		loadConfig(t, env.CaddyConfig())
		t.Fatalf("config loaded; want an error with %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
	return err.Error()
}

// loadCaddyfile posts a Caddyfile to the admin endpoint's /load, as
// `caddy reload` does, with the demo's addresses and store.
func loadCaddyfile(t *testing.T, site string) (int, string) {
	t.Helper()
	gw := strings.TrimPrefix(env.GatewayURL, "http://")
	src := fmt.Sprintf(`{
	admin %s
	persist_config off
	auto_https off
	default_bind 127.0.0.1
	sso {
		base_url %s
		storage_path %s
	}
}

http://%s {
%s
}
`, strings.TrimPrefix(env.AdminURL, "http://"), env.GatewayURL, ssoApp(demoConfig(t))["storage_path"], gw, site)
	// A load restarts the admin endpoint, even one that fails once
	// adapted (the old config is started again), so no connection is kept.
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Post(env.AdminURL+"/load", "text/caddyfile", strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		t.Cleanup(func() { loadConfig(t, env.CaddyConfig()) })
	}
	waitAdmin(t)
	var body struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(raw, &body); err != nil || body.Error == "" {
		return resp.StatusCode, string(raw)
	}
	return resp.StatusCode, body.Error
}

// assertStillGuarded checks that the demo's gateway still runs for every
// path: requests without a session, carrying a spoofed identity, are
// sent to sign in (browsers) or refused (API clients), and never reach
// the upstream, which would answer 200 with the headers it saw.
func assertStillGuarded(t *testing.T) {
	t.Helper()
	spoof := []string{"X-SSO-Email", "ceo@victim.test", "X-SSO-Org", demo.OrgID}
	for _, path := range []string{"/", "/deep/path/page?x=1", "/ssox", "/healthz"} {
		status, loc, body := getAfterLoad(t, env.GatewayURL+path, "text/html", spoof...)
		if status != http.StatusFound || !strings.HasPrefix(loc, "/sso/login") {
			t.Errorf("GET %s without a session: %d %q\n%.300s", path, status, loc, body)
		}
	}
	if status, _, body := getAfterLoad(t, env.GatewayURL+"/whoami", "application/json", spoof...); status != http.StatusUnauthorized {
		t.Errorf("API request without a session: %d %s", status, body)
	}
}

// TestREADMEPathMatcherRefused is the exact attack of issue 10: the README
// form `sso_gateway /sso { public_paths /healthz }` next to reverse_proxy
// made /sso a matcher, so every other path was proxied without sign-in and
// a spoofed X-SSO-Email reached the app. The Caddyfile is refused by the
// adapter behind /load, the JSON it used to adapt to is refused when it
// starts, and in both cases the running config keeps guarding the app.
func TestREADMEPathMatcherRefused(t *testing.T) {
	upstream := strings.TrimPrefix(env.UpstreamURL, "http://")
	status, body := loadCaddyfile(t, "\tsso_gateway /sso {\n\t\tpublic_paths /healthz\n\t}\n\treverse_proxy "+upstream)
	if status == http.StatusOK || !strings.Contains(body, "does not cover GET /sso/login") {
		t.Errorf("Caddyfile load: %d %s", status, body)
	}
	assertStillGuarded(t)

	// What the adapter made of it before: the gateway in a route of its
	// own with the path matcher, the proxy in the next.
	cfg := demoConfig(t)
	gw, proxy := demoHandlers(cfg)
	gw["public_paths"] = []string{"/healthz"}
	demoServer(cfg)["routes"] = []any{
		map[string]any{"match": []any{map[string]any{"path": []string{"/sso"}}}, "handle": []any{gw}},
		map[string]any{"handle": []any{proxy}},
	}
	wantRefused(t, cfg, "servers.gateway.routes[0]", `path ["/sso"]`, "does not cover GET /sso/login", "public_paths/protected_paths")
	assertStillGuarded(t)
}

// TestGatewayArgumentsRefused: `sso_gateway /a /b` was matcher /a with
// prefix /b.
func TestGatewayArgumentsRefused(t *testing.T) {
	upstream := strings.TrimPrefix(env.UpstreamURL, "http://")
	for _, site := range []string{"\tsso_gateway /a /b\n\treverse_proxy " + upstream, "\tsso_gateway /sso/\n\treverse_proxy " + upstream} {
		status, body := loadCaddyfile(t, site)
		if status == http.StatusOK || !strings.Contains(body, "sso_gateway") {
			t.Errorf("%q: %d %s", site, status, body)
		}
	}
	assertStillGuarded(t)
}

// TestEnclosingHandleRefused: the gateway inside `handle /app/*` runs for
// /app/* only; the enclosing matcher is found when the config starts.
func TestEnclosingHandleRefused(t *testing.T) {
	upstream := strings.TrimPrefix(env.UpstreamURL, "http://")
	status, body := loadCaddyfile(t, fmt.Sprintf("\thandle /app/* {\n\t\tsso_gateway\n\t\treverse_proxy %s\n\t}\n\thandle {\n\t\treverse_proxy %s\n\t}", upstream, upstream))
	if status == http.StatusOK {
		t.Fatalf("loaded: %s", body)
	}
	for _, want := range []string{`path ["/app/*"]`, "does not cover GET /sso/login", ".handle[0].routes["} {
		if !strings.Contains(body, want) {
			t.Errorf("error lacks %q: %s", want, body)
		}
	}
	assertStillGuarded(t)

	// The same in JSON, in a subroute.
	cfg := demoConfig(t)
	gw, proxy := demoHandlers(cfg)
	demoServer(cfg)["routes"] = []any{
		map[string]any{"handle": []any{map[string]any{"handler": "subroute", "routes": []any{
			map[string]any{"match": []any{map[string]any{"path": []string{"/app/*"}}}, "handle": []any{gw, proxy}, "terminal": true},
		}}}},
		map[string]any{"handle": []any{proxy}},
	}
	wantRefused(t, cfg, "servers.gateway.routes[0].handle[0].routes[0]", "does not cover GET /sso/login")

	// And in a named route, invoked under a matcher.
	cfg = demoConfig(t)
	gw, proxy = demoHandlers(cfg)
	demoServer(cfg)["named_routes"] = map[string]any{"guarded": map[string]any{"handle": []any{gw, proxy}}}
	demoServer(cfg)["routes"] = []any{
		map[string]any{"match": []any{map[string]any{"path": []string{"/app/*"}}}, "handle": []any{map[string]any{"handler": "invoke", "name": "guarded"}}, "terminal": true},
		map[string]any{"handle": []any{proxy}},
	}
	wantRefused(t, cfg, "servers.gateway.routes[0].handle[0](named_routes.guarded).handle[0]", `path ["/app/*"]`, "does not cover GET /sso/login")
	assertStillGuarded(t)
}

// TestBypassMatcherWarnsUnlessAllowed: a matcher that lets the gateway's
// endpoints through but not every request loads, with a warning naming
// it, unless allow_bypass says it is intended: an enclosing matcher (here
// everything but /public/*), or an earlier route that answers with the
// app (`handle /public/* { reverse_proxy … }` before the gateway's
// `handle`). Another site's route before the gateway's is not a bypass.
func TestBypassMatcherWarnsUnlessAllowed(t *testing.T) {
	t.Cleanup(func() { loadConfig(t, env.CaddyConfig()) })
	publicPath := []any{map[string]any{"path": []string{"/public/*"}}}
	for _, tc := range []struct {
		name   string
		routes func(gw, proxy map[string]any) []any
		want   []string // in the warning; none: no warning
	}{
		{"enclosing not path", func(gw, proxy map[string]any) []any {
			return []any{
				map[string]any{"match": []any{map[string]any{"not": publicPath}}, "handle": []any{gw, proxy}, "terminal": true},
				map[string]any{"handle": []any{proxy}},
			}
		}, []string{`"route":"servers.gateway.routes[0]"`, `not (path [\"/public/*\"])`, "without sign-in"}},
		{"earlier route to the app", func(gw, proxy map[string]any) []any {
			return []any{
				map[string]any{"match": publicPath, "handle": []any{proxy}, "terminal": true},
				map[string]any{"handle": []any{gw, proxy}},
			}
		}, []string{`"route":"servers.gateway.routes[0]"`, `"gateway":"servers.gateway.routes[1].handle[0]"`, "earlier route"}},
		{"another site first", func(gw, proxy map[string]any) []any {
			return []any{
				map[string]any{"match": []any{map[string]any{"host": []string{"other.example"}}}, "handle": []any{proxy}, "terminal": true},
				map[string]any{"handle": []any{map[string]any{"handler": "subroute", "routes": []any{map[string]any{"handle": []any{gw, proxy}}}}}},
			}
		}, nil},
		{"this site first, behind its gateway", func(gw, proxy map[string]any) []any {
			host := []any{map[string]any{"host": []string{"127.0.0.1"}}}
			return []any{
				map[string]any{"match": host, "handle": []any{map[string]any{"handler": "subroute", "routes": []any{
					map[string]any{"handle": []any{gw}},
					map[string]any{"match": publicPath, "handle": []any{proxy}},
				}}}},
				map[string]any{"handle": []any{gw, proxy}},
			}
		}, nil},
	} {
		for _, allow := range []bool{false, true} {
			cfg := demoConfig(t)
			gw, proxy := demoHandlers(cfg)
			if allow {
				gw["allow_bypass"] = true
			}
			demoServer(cfg)["routes"] = tc.routes(gw, proxy)
			logged := loadLogging(t, cfg)
			warned := strings.Contains(logged, "allow_bypass")
			switch {
			case allow || tc.want == nil:
				if warned {
					t.Errorf("%s, allow_bypass=%v: unwanted warning:\n%s", tc.name, allow, logged)
				}
			case !warned:
				t.Errorf("%s: no warning about the bypass:\n%s", tc.name, logged)
			default:
				for _, want := range tc.want {
					if !strings.Contains(logged, want) {
						t.Errorf("%s: warning lacks %s:\n%s", tc.name, want, logged)
					}
				}
			}
			// The gateway still guards what reaches it.
			if status, _, _ := getAfterLoad(t, env.GatewayURL+"/app/page", "text/html"); status != http.StatusFound {
				t.Errorf("%s, allow_bypass=%v: /app/page without a session: %d", tc.name, allow, status)
			}
		}
	}
}

// getAfterLoad GETs u without cookies or redirects, right after a config
// load. Now and then the first connection after a load is closed
// unanswered while the old server lets go of the shared listener (see
// loadConfig); that is retried, as a browser would, and is not what is
// tested here.
func getAfterLoad(t *testing.T, u, accept string, hdr ...string) (status int, location, body string) {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{DisableKeepAlives: true}}
	for i := 0; ; i++ {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("Accept", accept)
		for j := 0; j+1 < len(hdr); j += 2 {
			req.Header.Set(hdr[j], hdr[j+1])
		}
		resp, err := c.Do(req)
		if err == nil {
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode, resp.Header.Get("Location"), string(raw)
		}
		if i == 3 {
			t.Fatalf("GET %s: %v", u, err)
		}
	}
}

// loadLogging loads cfg with the log (WARN and up) going to a file, and
// returns what loading it logged.
func loadLogging(t *testing.T, cfg map[string]any) string {
	t.Helper()
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	cfg["logging"] = map[string]any{"logs": map[string]any{"default": map[string]any{
		"level": "WARN", "writer": map[string]any{"output": "file", "filename": logFile},
	}}}
	loadConfig(t, marshal(t, cfg))
	raw, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// TestPublicEverythingWarns: `public_paths /*` (meant: /static/*) makes
// the whole app public; it loads, but not silently.
func TestPublicEverythingWarns(t *testing.T) {
	t.Cleanup(func() { loadConfig(t, env.CaddyConfig()) })
	for _, paths := range [][]string{{"/healthz", "/*"}, {"*"}} {
		cfg := demoConfig(t)
		gw, _ := demoHandlers(cfg)
		gw["public_paths"] = paths
		if logged := loadLogging(t, cfg); !strings.Contains(logged, "public_paths make every path public") {
			t.Errorf("%q: no warning:\n%s", paths, logged)
		}
	}
	cfg := demoConfig(t)
	gw, _ := demoHandlers(cfg)
	gw["public_paths"] = []string{"/", "/static/*"}
	if logged := loadLogging(t, cfg); strings.Contains(logged, "every path public") {
		t.Errorf("warned about / and /static/*:\n%s", logged)
	}
}

// TestEarlierRouteToTheAppRefused: a route before the gateway's that
// answers with the app for the gateway's own endpoints (here: for every
// request) means the gateway never runs.
func TestEarlierRouteToTheAppRefused(t *testing.T) {
	cfg := demoConfig(t)
	gw, proxy := demoHandlers(cfg)
	demoServer(cfg)["routes"] = []any{
		map[string]any{"handle": []any{proxy}},
		map[string]any{"handle": []any{gw, proxy}},
	}
	wantRefused(t, cfg, "servers.gateway.routes[0] comes before the gateway and answers with the app", "GET /sso/login")

	cfg = demoConfig(t)
	gw, proxy = demoHandlers(cfg)
	demoServer(cfg)["routes"] = []any{
		map[string]any{"match": []any{map[string]any{"path": []string{"/sso/*"}}}, "handle": []any{map[string]any{"handler": "file_server"}}},
		map[string]any{"handle": []any{gw, proxy}},
	}
	wantRefused(t, cfg, "servers.gateway.routes[0] comes before the gateway", "GET /sso/login")

	upstream := strings.TrimPrefix(env.UpstreamURL, "http://")
	status, body := loadCaddyfile(t, fmt.Sprintf("\troute {\n\t\treverse_proxy %s\n\t\tsso_gateway\n\t}", upstream))
	if status == http.StatusOK || !strings.Contains(body, "comes before the gateway and answers with the app") {
		t.Errorf("Caddyfile with reverse_proxy before sso_gateway: %d %s", status, body)
	}
	assertStillGuarded(t)
}

func randomKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// TestEnvPlaceholdersExpanded: `session_key {env.SSOGATE_SESSION_KEY}`, as
// Caddyfile.example has it, failed to start (the placeholder text was too
// short to be a key) or, when 32+ characters long, used the public
// placeholder text as the key. A session sealed under the expanded key
// stays valid when the same key is then given literally, which it would
// not if the text had been the key.
func TestEnvPlaceholdersExpanded(t *testing.T) {
	key := randomKey(t)
	t.Setenv("SSOGATE_E2E_SESSION_KEY", key)
	t.Setenv("SSOGATE_E2E_BASE_URL", env.GatewayURL)
	t.Setenv("SSOGATE_E2E_PREFIX", "/sso")
	t.Setenv("SSOGATE_E2E_PUBLIC", "/public/*")
	t.Cleanup(func() { loadConfig(t, env.CaddyConfig()) })

	cfg := demoConfig(t)
	sso := ssoApp(cfg)
	sso["session_keys"] = []string{"{env.SSOGATE_E2E_SESSION_KEY}"}
	sso["base_url"] = "{env.SSOGATE_E2E_BASE_URL}"
	gw, _ := demoHandlers(cfg)
	gw["prefix"] = "{env.SSOGATE_E2E_PREFIX}"
	gw["public_paths"] = []string{"{env.SSOGATE_E2E_PUBLIC}"}
	loadConfig(t, marshal(t, cfg))
	getAfterLoad(t, env.GatewayURL+"/sso/login", "text/html") // past the listener hand-over

	b := newBrowser(t)
	if p := b.signIn(demo.AliceEmail, demo.DefaultPassword, ""); p.status != http.StatusSeeOther {
		t.Fatalf("sign-in with expanded options: %d\n%s", p.status, p.body)
	}
	signedIn(t, b)
	anon := newBrowser(t)
	if p := anon.get(env.GatewayURL + "/public/x"); p.status != http.StatusOK {
		t.Errorf("public path from the environment: %d", p.status)
	}

	cfg = demoConfig(t)
	ssoApp(cfg)["session_keys"] = []string{key}
	loadConfig(t, marshal(t, cfg))
	getAfterLoad(t, env.GatewayURL+"/sso/login", "text/html")
	signedIn(t, b)
}

// TestSessionKeysRefused: a key that is an unexpanded placeholder, empty
// once expanded, or obviously weak stops the config, and the error names
// the option but never shows the key.
func TestSessionKeysRefused(t *testing.T) {
	for _, tc := range []struct{ key, want string }{
		{"{env.SSOGATE_E2E_UNSET_SESSION_KEY}", "empty once its placeholders are expanded"},
		{"{vault.production-gateway-session-key-v1}", "not expanded"},
		{"<32+ chars>", "shorter than 32 bytes"},
		{"change-me-change-me-change-me-change-me", "not a usable secret"},
		{strings.Repeat("x", 48), "not a usable secret"},
		{"0123456789abcdefghijklmnopqrstuvwxyz", "not a usable secret"},
	} {
		cfg := demoConfig(t)
		ssoApp(cfg)["session_keys"] = []string{randomKey(t), tc.key}
		msg := wantRefused(t, cfg, "session_keys[1]", tc.want)
		if strings.Contains(msg, tc.key) {
			t.Errorf("the error shows the key %q: %s", tc.key, msg)
		}
	}
	assertStillGuarded(t)
}

// TestBadOptionsRefused: every option is checked when the config loads,
// with an error naming the option and its value. Before, `header email
// "X Bad"` loaded and then every signed-in request was a 502, and
// `session_lifetime -5m` quietly became 8h.
func TestBadOptionsRefused(t *testing.T) {
	type change func(sso, gw map[string]any)
	for _, tc := range []struct {
		name   string
		change change
		want   []string
	}{
		{"no base_url", func(sso, _ map[string]any) { delete(sso, "base_url") }, []string{"base_url is required"}},
		{"base_url with path", func(sso, _ map[string]any) { sso["base_url"] = env.GatewayURL + "/app" }, []string{"base_url", "/app"}},
		{"base_url from unset env", func(sso, _ map[string]any) { sso["base_url"] = "{env.SSOGATE_E2E_UNSET}" }, []string{"base_url", "{env.SSOGATE_E2E_UNSET}", "empty"}},
		{"plain http elsewhere", func(sso, _ map[string]any) { sso["base_url"] = "http://app.example.com" }, []string{"base_url", "must be https"}},
		{"storage_path from unset env", func(sso, _ map[string]any) { sso["storage_path"] = "{env.SSOGATE_E2E_UNSET}" }, []string{"storage_path", "empty"}},
		{"storage and storage_path", func(sso, _ map[string]any) {
			sso["storage"] = map[string]any{"module": "badger", "path": "/tmp/x"}
		}, []string{"storage_path and storage both given"}},
		{"unknown storage", func(sso, _ map[string]any) {
			delete(sso, "storage_path")
			sso["storage"] = map[string]any{"module": "redis"}
		}, []string{"sso.storage.redis"}},
		{"postgres without dsn", func(sso, _ map[string]any) {
			delete(sso, "storage_path")
			sso["storage"] = map[string]any{"module": "postgres"}
		}, []string{"dsn is required"}},
		{"postgres dsn from unset env", func(sso, _ map[string]any) {
			delete(sso, "storage_path")
			sso["storage"] = map[string]any{"module": "postgres", "dsn": "{env.SSOGATE_E2E_UNSET}"}
		}, []string{"storage postgres dsn is empty"}},
		{"postgres bad schema", func(sso, _ map[string]any) {
			delete(sso, "storage_path")
			sso["storage"] = map[string]any{"module": "postgres", "dsn": "postgres://u:pw@127.0.0.1:1/db", "schema": "a;drop"}
		}, []string{`schema "a;drop"`}},
		{"negative lifetime", func(sso, _ map[string]any) { sso["session_lifetime"] = "-5m" }, []string{"session_lifetime -5m0s", "positive"}},
		{"negative idle", func(sso, _ map[string]any) { sso["session_idle_timeout"] = "-1s" }, []string{"session_idle_timeout -1s"}},
		{"negative authn ttl", func(sso, _ map[string]any) { sso["authn_request_ttl"] = "-10m" }, []string{"authn_request_ttl -10m0s"}},
		{"negative invite ttl", func(sso, _ map[string]any) { sso["invite_ttl"] = "-72h" }, []string{"invite_ttl -72h0m0s"}},
		{"idle beyond lifetime", func(sso, _ map[string]any) { sso["session_lifetime"] = "1h"; sso["session_idle_timeout"] = "2h" },
			[]string{"session_idle_timeout 2h0m0s", "session_lifetime 1h0m0s"}},
		{"recheck spinning", func(sso, _ map[string]any) { sso["domain_recheck_interval"] = "1ms" }, []string{"domain_recheck_interval 1ms", "at least 1m0s"}},
		{"resolver without port", func(sso, _ map[string]any) { sso["dns_resolver"] = "127.0.0.1" }, []string{`dns_resolver "127.0.0.1"`}},
		{"resolver bad port", func(sso, _ map[string]any) { sso["dns_resolver"] = "127.0.0.1:99999" }, []string{`dns_resolver "127.0.0.1:99999"`}},
		{"hashing concurrency", func(sso, _ map[string]any) { sso["password_hashing"] = map[string]any{"max_concurrent": 100000} }, []string{"max_concurrent 100000"}},
		{"hashing memory", func(sso, _ map[string]any) { sso["password_hashing"] = map[string]any{"memory_kib": 1} }, []string{"password_hashing", "memory_kib 1"}},

		{"header name with a space", func(_, gw map[string]any) { gw["headers"] = map[string]any{"email": "X Bad"} }, []string{`header email "X Bad"`, "not a valid HTTP header field name"}},
		{"hop-by-hop header", func(_, gw map[string]any) { gw["headers"] = map[string]any{"user": "Connection"} }, []string{`header user "Connection"`, "reserved"}},
		{"credential header", func(_, gw map[string]any) { gw["headers"] = map[string]any{"user_id": "authorization"} }, []string{`header user_id "authorization"`, "reserved"}},
		{"Sec- header", func(_, gw map[string]any) { gw["headers"] = map[string]any{"org": "Sec-Fetch-Site"} }, []string{`header org "Sec-Fetch-Site"`}},
		{"two fields one header", func(_, gw map[string]any) { gw["headers"] = map[string]any{"email": "X-SSO-User"} }, []string{`header email "X-Sso-User"`, "already used by header user"}},
		{"unknown preset", func(_, gw map[string]any) { gw["header_preset"] = "nginx" }, []string{`header_preset "nginx"`}},
		{"prefix without slash", func(_, gw map[string]any) { gw["prefix"] = "sso" }, []string{`prefix "sso"`}},
		{"prefix with trailing slash", func(_, gw map[string]any) { gw["prefix"] = "/sso/" }, []string{`prefix "/sso/"`}},
		{"prefix root", func(_, gw map[string]any) { gw["prefix"] = "/" }, []string{`prefix "/"`}},
		{"prefix with space", func(_, gw map[string]any) { gw["prefix"] = "/s so" }, []string{`prefix "/s so"`}},
		{"prefix with dot segment", func(_, gw map[string]any) { gw["prefix"] = "/a/../sso" }, []string{`prefix "/a/../sso"`}},
		{"prefix from unset env", func(_, gw map[string]any) { gw["prefix"] = "{env.SSOGATE_E2E_UNSET}" }, []string{"prefix", "empty"}},
		{"public path placeholder", func(_, gw map[string]any) { gw["public_paths"] = []string{"/ok", "{http.request.header.X-Public}"} },
			[]string{`public_paths[1] "{http.request.header.X-Public}"`, "placeholders are not allowed"}},
		{"public path relative", func(_, gw map[string]any) { gw["public_paths"] = []string{"healthz"} }, []string{`public_paths[0] "healthz"`}},
		{"public path query", func(_, gw map[string]any) { gw["public_paths"] = []string{"/app?public=1"} }, []string{`public_paths[0] "/app?public=1"`}},
		{"protected path empty", func(_, gw map[string]any) { gw["protected_paths"] = []string{""} }, []string{"protected_paths[0]", "empty"}},
		{"protected path bad pattern", func(_, gw map[string]any) { gw["protected_paths"] = []string{"/app/[a-"} }, []string{`protected_paths[0] "/app/[a-"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := demoConfig(t)
			gw, _ := demoHandlers(cfg)
			tc.change(ssoApp(cfg), gw)
			wantRefused(t, cfg, tc.want...)
		})
	}
	assertStillGuarded(t)
}

// TestGoodOptionsLoad: the checks refuse slips, not reasonable configs.
func TestGoodOptionsLoad(t *testing.T) {
	t.Cleanup(func() { loadConfig(t, env.CaddyConfig()) })
	for _, change := range []func(sso, gw map[string]any){
		// The default idle timeout (1h) follows a shorter lifetime.
		func(sso, _ map[string]any) { sso["session_lifetime"] = "30m" },
		func(sso, _ map[string]any) {
			sso["session_lifetime"] = "12h"
			sso["session_idle_timeout"] = "12h"
			sso["domain_recheck_interval"] = "1m"
			sso["dns_resolver"] = "[::1]:53"
			sso["session_keys"] = []string{randomKey(t), randomKey(t)}
		},
		func(_, gw map[string]any) {
			gw["prefix"] = "/sso"
			gw["public_paths"] = []string{"*.css", "/static/*", "/healthz"}
			gw["header_preset"] = "oauth2-proxy"
			gw["headers"] = map[string]any{"org": "-", "email": "X-Auth-Request-Email"}
		},
		func(_, gw map[string]any) { gw["protected_paths"] = []string{"/app/*", "/admin"} },
	} {
		cfg := demoConfig(t)
		gw, _ := demoHandlers(cfg)
		change(ssoApp(cfg), gw)
		loadConfig(t, marshal(t, cfg))
	}
}

// TestErrorRouteToTheAppWarns: a request the gateway fails with an error
// goes to the server's error routes, so one that proxies to the app would
// serve it without a session. Error pages from files are the usual use of
// error routes, so this warns rather than refuses.
func TestErrorRouteToTheAppWarns(t *testing.T) {
	t.Cleanup(func() { loadConfig(t, env.CaddyConfig()) })
	for _, withErrorRoute := range []bool{false, true} {
		cfg := demoConfig(t)
		_, proxy := demoHandlers(cfg)
		if withErrorRoute {
			demoServer(cfg)["errors"] = map[string]any{"routes": []any{map[string]any{"handle": []any{proxy}}}}
		}
		logged := loadLogging(t, cfg)
		warned := strings.Contains(logged, "an error route answers with reverse_proxy")
		if warned != withErrorRoute {
			t.Errorf("error route to the app: %v, warned: %v\n%s", withErrorRoute, warned, logged)
		}
		if withErrorRoute && !strings.Contains(logged, `"route":"servers.gateway.errors.routes[0]"`) {
			t.Errorf("the warning does not name the route:\n%s", logged)
		}
	}
}
