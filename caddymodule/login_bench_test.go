package caddymodule_test

import (
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/ssogate/ssogate/caddymodule"
	"github.com/ssogate/ssogate/examples/demo"
	"github.com/ssogate/ssogate/examples/demoidp"
	"github.com/ssogate/ssogate/store"
)

// BenchmarkSAMLLogin runs full SP-initiated sign-ins through the demo
// installation (real Caddy, real sso_gateway, the samlidp-based demo IdP)
// with 100k users in the organization and 1k other organizations with a
// verified domain each in the store: the gateway's login form answers with
// an AuthnRequest, the IdP signs (and encrypts) a response to it, the ACS
// validates it and starts a session, and the session is used once. It
// reports logins/s and the part of each login spent in the gateway
// (gateway-ms/login: the login form and the ACS, not the IdP's signing).
// Runs only with -bench: the setup writes 100k users and 1k orgs.
func BenchmarkSAMLLogin(b *testing.B) {
	st := demoStore(b)
	loadScaleOnce.Do(func() { loadScale(b, st) })

	for _, parallel := range []int{1, 4} {
		b.Run("concurrency="+strconv.Itoa(parallel), func(b *testing.B) {
			var logins, gatewayNanos atomic.Int64
			login := func() {
				gw, err := oneLogin()
				if err != nil {
					b.Error(err)
					return
				}
				logins.Add(1)
				gatewayNanos.Add(int64(gw))
			}
			start := time.Now()
			if parallel == 1 {
				for b.Loop() {
					login()
				}
			} else {
				b.SetParallelism(parallel / 2) // GOMAXPROCS is 2 here
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						login()
					}
				})
			}
			n := logins.Load()
			if n == 0 {
				return
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "logins/s")
			b.ReportMetric(float64(gatewayNanos.Load())/float64(n)/1e6, "gateway-ms/login")
		})
	}
}

var loadScaleOnce sync.Once

// demoStore is the store of the running demo installation.
func demoStore(b *testing.B) *store.Store {
	app, err := caddy.ActiveContext().App("sso")
	if err != nil {
		b.Fatal(err)
	}
	st, err := app.(*caddymodule.App).Store()
	if err != nil {
		b.Fatal(err)
	}
	return st
}

// loadScale adds 100k SCIM-provisioned users to the demo organization and
// 1k active organizations with a verified domain each, several writers at
// a time so that synced commits share disk flushes.
func loadScale(b *testing.B, st *store.Store) {
	start := time.Now()
	const users, orgs = 100_000, 1_000
	for from := 0; from < users; from += 1000 {
		var us []*store.User
		for i := from; i < from+1000; i++ {
			name := fmt.Sprintf("user%07d@%s", i, demo.Domain)
			us = append(us, &store.User{OrgID: demo.OrgID, UserName: name, ExternalID: "ext-" + name, Active: true,
				Source: store.SourceSCIM, Emails: []store.Email{{Value: name, Primary: true}}})
		}
		if err := st.CreateUsers(us); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < orgs; i = int(next.Add(1)) - 1 {
				id := "bench-" + strconv.Itoa(i)
				if err := st.CreateOrg(&store.Org{ID: id, Name: id, State: store.OrgActive}); err != nil {
					b.Error(err)
					return
				}
				if err := st.AddDomain(&store.Domain{OrgID: id, Name: id + ".example", Status: store.DomainVerified}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.Logf("loaded %d users and %d orgs in %v", users, orgs, time.Since(start).Round(time.Millisecond))
}

// oneLogin signs Alice in with a fresh browser and returns the time the
// gateway's two steps took.
func oneLogin() (time.Duration, error) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{
		Jar:           jar,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	post := func(u string, form url.Values) (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "text/html")
		resp, err := c.Do(req)
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		return resp, nil
	}

	t0 := time.Now()
	resp, err := post(env.GatewayURL+"/sso/login", url.Values{"email": {demo.AliceEmail}})
	if err != nil {
		return 0, err
	}
	gw := time.Since(t0)
	if resp.StatusCode != http.StatusSeeOther {
		return 0, fmt.Errorf("login form: %s", resp.Status)
	}
	acs, form, err := env.IdP.RespondWith(resp.Header.Get("Location"), demo.AliceEmail, demoidp.RespondOptions{})
	if err != nil {
		return 0, err
	}
	t1 := time.Now()
	resp, err = post(acs, form)
	if err != nil {
		return 0, err
	}
	gw += time.Since(t1)
	if resp.StatusCode/100 != 3 {
		return 0, fmt.Errorf("ACS: %s", resp.Status)
	}

	req, _ := http.NewRequest(http.MethodGet, env.GatewayURL+"/whoami", nil)
	req.Header.Set("Accept", "application/json")
	resp, err = c.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("signed-in request: %s", resp.Status)
	}
	return gw, nil
}
