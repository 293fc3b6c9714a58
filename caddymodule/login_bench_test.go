package caddymodule_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/caddyserver/caddy/v2"
	"github.com/crewjam/saml"

	"github.com/ssogate/ssogate/caddymodule"
	"github.com/ssogate/ssogate/caddymodule/samlsp"
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

// BenchmarkSAMLLoginConcurrent measures the ACS under concurrent sign-ins
// with the IdP's signing done beforehand, beside the raw validation rate of
// the same responses, in the same process and run. Each iteration signs in
// loginBatch different users of the demo org (100k users and 1k orgs
// loaded, as for BenchmarkSAMLLogin), loginChunk at a time: a browser each
// posts the login form (timed: authn-requests/s), the demo IdP signs and
// encrypts a response to each AuthnRequest (not timed), then the
// responses are posted to the ACS, inFlight at a time (timed: logins/s),
// and validated again outside the gateway by samlsp with no replay cache
// (timed: validations/s, crewjam's parsing, signature check and decryption
// plus the gateway's own checks). Each rate is also given per CPU second
// of this process (for logins that includes the HTTP client's share).
// Every login must answer 303 and its session must then be usable,
// checked outside the timing.
// Runs only with -bench, as it loads the store first.
func BenchmarkSAMLLoginConcurrent(b *testing.B) {
	st := demoStore(b)
	loadScaleOnce.Do(func() { loadScale(b, st) })
	org, err := st.GetOrg(demo.OrgID)
	if err != nil {
		b.Fatal(err)
	}
	key, cert, err := caddymodule.SPKeyPair(st)
	if err != nil {
		b.Fatal(err)
	}
	app, err := caddy.ActiveContext().App("sso")
	if err != nil {
		b.Fatal(err)
	}
	urls := app.(*caddymodule.App).SPURLs(demo.OrgID)
	raw, err := samlsp.New(samlsp.Config{Org: org, URLs: samlsp.URLs(urls), Key: key, Certificate: cert})
	if err != nil {
		b.Fatal(err)
	}

	for _, inFlight := range []int{16, 32} {
		b.Run("in-flight="+strconv.Itoa(inFlight), func(b *testing.B) {
			tr := &http.Transport{MaxIdleConnsPerHost: inFlight, MaxConnsPerHost: inFlight}
			defer tr.CloseIdleConnections()
			var forms, logins, validations time.Duration
			var loginCPU, validationCPU time.Duration
			n := 0
			for i := 0; i < b.N; i++ {
				// Logins and validations alternate in small chunks, so
				// that the load of other processes on the shared machine
				// falls on both alike, and each chunk is signed just
				// before it is posted, well within the responses'
				// validity however slow the machine is.
				for range loginBatch / loginChunk {
					b.StopTimer()
					chunk, formTime, err := prepareLogins(tr, inFlight, loginChunk)
					if err != nil {
						b.Fatal(err)
					}
					forms += formTime
					b.StartTimer()
					t0, c0 := time.Now(), processCPU()
					if err := inParallel(inFlight, len(chunk), func(j int) error { return chunk[j].post() }); err != nil {
						b.Fatal(err)
					}
					logins += time.Since(t0)
					loginCPU += processCPU() - c0
					b.StopTimer()
					t1, c1 := time.Now(), processCPU()
					if err := inParallel(inFlight, len(chunk), func(j int) error {
						_, err := raw.ParseResponse(chunk[j].form.Get("SAMLResponse"), []string{chunk[j].requestID})
						return err
					}); err != nil {
						b.Fatal(err)
					}
					validations += time.Since(t1)
					validationCPU += processCPU() - c1
					if err := inParallel(inFlight, len(chunk), func(j int) error { return chunk[j].use() }); err != nil {
						b.Fatal(err)
					}
					n += len(chunk)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(n)/loginCPU.Seconds(), "logins/cpu-s")
			b.ReportMetric(float64(n)/validationCPU.Seconds(), "validations/cpu-s")
			b.ReportMetric(float64(n)/logins.Seconds(), "logins/s")
			b.ReportMetric(float64(n)/validations.Seconds(), "validations/s")
			b.ReportMetric(float64(n)/forms.Seconds(), "authn-requests/s")
			b.ReportMetric(validations.Seconds()/logins.Seconds(), "logins/validations")
		})
	}
}

// loginBatch is how many sign-ins one iteration makes.
const loginBatch = 512

// loginChunk is how many are prepared, posted and validated at a time:
// with 16 or 32 in flight, enough for the concurrent phase to outweigh its
// ramp-up and ramp-down.
const loginChunk = 128

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// nextBenchUser numbers the loaded users that sign in, so that every
// sign-in of a run is a different one (as in a morning rush, rather than
// one user signing in 200 times a second).
var nextBenchUser atomic.Int64

// preparedLogin is one browser with a signed response to post.
type preparedLogin struct {
	c         *http.Client
	acs       string
	form      url.Values
	requestID string
}

// prepareLogins has n browsers post the login form, inFlight at a time,
// and returns them with the demo IdP's responses, and how long the login
// forms took.
func prepareLogins(tr http.RoundTripper, inFlight, n int) ([]*preparedLogin, time.Duration, error) {
	batch := make([]*preparedLogin, n)
	locations := make([]string, n)
	emails := make([]string, n)
	for j := range batch {
		jar, _ := cookiejar.New(nil)
		batch[j] = &preparedLogin{c: &http.Client{
			Jar: jar, Transport: tr, Timeout: 60 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}}
		emails[j] = fmt.Sprintf("user%07d@%s", nextBenchUser.Add(1)%100_000, demo.Domain)
	}
	t0 := time.Now()
	err := inParallel(inFlight, n, func(j int) error {
		resp, err := batch[j].do(http.MethodPost, env.GatewayURL+"/sso/login", url.Values{"email": {emails[j]}})
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusSeeOther {
			return fmt.Errorf("login form: %s", resp.Status)
		}
		locations[j] = resp.Header.Get("Location")
		return nil
	})
	formTime := time.Since(t0)
	if err != nil {
		return nil, 0, err
	}
	for j, p := range batch {
		email := emails[j]
		p.acs, p.form, err = env.IdP.RespondWith(locations[j], demo.AliceEmail, demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
			a.Subject.NameID.Value = email
			demoidp.SetAttribute(a, demoidp.AttrName, email)
			demoidp.SetAttribute(a, demoidp.AttrObjectID, "idp-"+email)
		}})
		if err != nil {
			return nil, 0, err
		}
		if p.requestID, err = inResponseTo(p.form.Get("SAMLResponse")); err != nil {
			return nil, 0, err
		}
	}
	return batch, formTime, nil
}

// inResponseTo reads the request ID a response answers.
func inResponseTo(encoded string) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return "", err
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		return "", err
	}
	if doc.Root() == nil || doc.Root().SelectAttrValue("InResponseTo", "") == "" {
		return "", errors.New("response answers no request")
	}
	return doc.Root().SelectAttrValue("InResponseTo", ""), nil
}

func (p *preparedLogin) do(method, u string, form url.Values) (*http.Response, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return nil, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Accept", "text/html")
	resp, err := p.c.Do(req)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

// post posts the signed response to the ACS: the login.
func (p *preparedLogin) post() error {
	resp, err := p.do(http.MethodPost, p.acs, p.form)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusSeeOther {
		return fmt.Errorf("ACS: %s", resp.Status)
	}
	return nil
}

// use makes the first request of the session the login started.
func (p *preparedLogin) use() error {
	resp, err := p.do(http.MethodGet, env.GatewayURL+"/whoami", nil)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("signed-in request: %s", resp.Status)
	}
	return nil
}

// inParallel runs f(0..n-1) with at most k running at a time and returns
// the first error.
func inParallel(k, n int, f func(int) error) error {
	var next atomic.Int64
	errs := make(chan error, k)
	for range k {
		go func() {
			for j := int(next.Add(1)) - 1; j < n; j = int(next.Add(1)) - 1 {
				if err := f(j); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	var first error
	for range k {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}
