package caddymodule_test

import (
	"bufio"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ssogate/ssogate/examples/demo"
)

// scrape reads Caddy's /metrics (on the admin endpoint, where Caddy
// serves its registry) and returns a sum function over the series of one
// metric whose labels include the given ones.
func scrape(t *testing.T) func(name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(env.AdminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	body, _ := io.ReadAll(resp.Body)
	type series struct {
		labels map[string]string
		value  float64
	}
	all := map[string][]series{}
	labelRE := regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		head, val, ok := strings.Cut(line, " ")
		if i := strings.LastIndexByte(line, '}'); i >= 0 {
			head, val, ok = line[:i+1], strings.TrimSpace(line[i+1:]), true
		}
		if !ok {
			continue
		}
		name, rest, _ := strings.Cut(head, "{")
		s := series{labels: map[string]string{}}
		for _, m := range labelRE.FindAllStringSubmatch(rest, -1) {
			s.labels[m[1]] = m[2]
		}
		s.value, _ = strconv.ParseFloat(strings.Fields(val)[0], 64)
		all[name] = append(all[name], s)
	}
	return func(name string, labels ...string) float64 {
		sum := 0.0
	next:
		for _, s := range all[name] {
			for i := 0; i+1 < len(labels); i += 2 {
				if s.labels[labels[i]] != labels[i+1] {
					continue next
				}
			}
			sum += s.value
		}
		return sum
	}
}

// TestMetricsMove drives sign-ins, SCIM requests and sessions through the
// gateway and reads Caddy's /metrics: each counter moves by what was done,
// labelled by organization, method, outcome and bounded reasons, and
// nothing a stranger chooses (an unknown org in a SCIM URL) becomes a
// label value.
func TestMetricsMove(t *testing.T) {
	before := scrape(t)

	b := newBrowser(t)
	b.signIn(demo.AliceEmail, demo.DefaultPassword, "")
	// The first requests may create the token signing keys (writes,
	// which end every cached re-check); later ones reuse a re-check.
	for range 5 {
		b.whoami()
	}
	signInRefused(t, demo.BobEmail, "")

	c := newSCIMClient(t, demo.OrgID)
	c.must(http.StatusOK, http.MethodGet, "/Users", nil)
	wrong := scimClient{t: t, base: c.base, token: "wrong"}
	if s, _ := wrong.do(http.MethodGet, "/Users/abc", nil); s != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", s)
	}
	stranger := scimClient{t: t, base: env.GatewayURL + "/sso/scim/no-such-org-xyz/v2", token: "x"}
	stranger.do(http.MethodPatch, "/Groups/1", map[string]any{})

	// Wrong tokens from one address until the SCIM throttle answers 429.
	flood := scimClient{t: t, base: c.base, token: "wrong", client: newBrowserFrom(t, "127.0.0.77").client}
	throttled := false
	for range 500 {
		if s, _ := flood.do(http.MethodGet, "/Users", nil); s == http.StatusTooManyRequests {
			throttled = true
			break
		}
	}
	if !throttled {
		t.Fatal("500 wrong SCIM tokens from one address were never throttled")
	}

	after := scrape(t)
	moved := func(name string, want float64, labels ...string) {
		t.Helper()
		if d := after(name, labels...) - before(name, labels...); d < want {
			t.Errorf("%s%v moved by %v, want at least %v", name, labels, d, want)
		}
	}
	moved("ssogate_signins_total", 1, "org", demo.OrgID, "method", "saml", "outcome", "success", "reason", "")
	moved("ssogate_signins_total", 1, "org", demo.OrgID, "method", "saml", "outcome", "denied", "reason", "not_authorized")
	moved("ssogate_scim_requests_total", 1, "org", demo.OrgID, "resource", "Users", "operation", "list", "status", "200")
	moved("ssogate_scim_requests_total", 1, "org", demo.OrgID, "resource", "Users", "operation", "get", "status", "401")
	moved("ssogate_scim_requests_total", 1, "org", "unknown", "resource", "Groups", "operation", "patch")
	moved("ssogate_throttled_total", 1, "kind", "scim")
	moved("ssogate_recheck_cache_total", 1, "result", "hit")
	moved("ssogate_recheck_cache_total", 1, "result", "miss")
	moved("ssogate_store_write_duration_seconds_count", 1, "op", "complete sign-in")
	if after("ssogate_active_sessions") < 1 {
		t.Errorf("ssogate_active_sessions = %v with a live session", after("ssogate_active_sessions"))
	}
	if v := after("ssogate_store_changes_live"); v != 1 {
		t.Errorf("ssogate_store_changes_live = %v on Badger, want 1", v)
	}
	if n := after("ssogate_scim_requests_total", "org", "no-such-org-xyz"); n != 0 {
		t.Errorf("an unknown org became a label value: %v", n)
	}
}
