package caddymodule

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ssogate/ssogate/caddymodule/local"
	"github.com/ssogate/ssogate/store"
)

// Metrics go into Caddy's registry (ctx.GetMetricsRegistry), so they
// appear on Caddy's own /metrics. Every label takes values from a fixed,
// small set, or organization ids of organizations that exist: never user
// names, emails, free text or anything a stranger can vary at will (an
// unknown org in a URL is "unknown").

const metricsNamespace = "ssogate"

// unknownOrg labels what no existing organization owns.
const unknownOrg = "unknown"

type metrics struct {
	signIns   *prometheus.CounterVec // org, method, outcome, reason
	scim      *prometheus.CounterVec // org, resource, operation, status
	throttled *prometheus.CounterVec // kind
	recheck   *prometheus.CounterVec // result
	// The two children of recheck, resolved once: finding a child by its
	// label values hashes them under a lock, on every request.
	recheckHit, recheckMiss prometheus.Counter
	storeWrites             *prometheus.HistogramVec // op
}

// newMetrics creates the collectors and registers them in reg, with the
// active-sessions gauge reading count and the change-listener gauge
// reading live.
func newMetrics(reg prometheus.Registerer, count func() (int, error), live func() float64) (*metrics, error) {
	m := &metrics{
		signIns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "signins_total",
			Help: "Sign-in attempts by organization, method (saml, password, backup), outcome (success, failure, denied) and refusal reason.",
		}, []string{"org", "method", "outcome", "reason"}),
		scim: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "scim_requests_total",
			Help: "SCIM requests by organization, resource, operation and HTTP status.",
		}, []string{"org", "resource", "operation", "status"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "throttled_total",
			Help: "Attempts refused by a throttle, by kind (password: locked or busy sign-ins; scim: refused authentications).",
		}, []string{"kind"}),
		recheck: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "recheck_cache_total",
			Help: "Session re-checks served from the re-check cache (hit) or done in full (miss).",
		}, []string{"result"}),
		storeWrites: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Name: "store_write_duration_seconds",
			Help:    "Duration of store write transactions (synced to disk, retries included), by operation.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"op"}),
	}
	sessions := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: metricsNamespace, Name: "active_sessions",
		Help: "Live sessions in the store (counted at most every 15 s).",
	}, cachedCount(count, 15*time.Second))
	changesLive := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: metricsNamespace, Name: "store_changes_live",
		Help: "1 while this instance hears every store write that can change its cached re-checks (always with Badger; with PostgreSQL while the change listener is connected and its heartbeats are fresh), 0 while every request is re-checked in full.",
	}, live)
	// A registry that already has them (two sso apps provisioned in one
	// context, as tests do) keeps the first set, as Caddy's own modules do.
	for _, f := range []**prometheus.CounterVec{&m.signIns, &m.scim, &m.throttled, &m.recheck} {
		c, err := register(reg, *f)
		if err != nil {
			return nil, err
		}
		*f = c.(*prometheus.CounterVec)
	}
	c, err := register(reg, m.storeWrites)
	if err != nil {
		return nil, err
	}
	m.storeWrites = c.(*prometheus.HistogramVec)
	for _, g := range []prometheus.Collector{sessions, changesLive} {
		if _, err := register(reg, g); err != nil {
			return nil, err
		}
	}
	// Series that should read 0 rather than be absent before the first
	// event, so that rate() and alerts work from the start.
	m.recheckHit = m.recheck.WithLabelValues("hit")
	m.recheckMiss = m.recheck.WithLabelValues("miss")
	m.throttled.WithLabelValues("password")
	m.throttled.WithLabelValues("scim")
	return m, nil
}

// register registers c, or returns the equal collector reg already has.
func register(reg prometheus.Registerer, c prometheus.Collector) (prometheus.Collector, error) {
	err := reg.Register(c)
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		return are.ExistingCollector, nil
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// cachedCount bounds what a scrape costs: counting sessions walks their
// keys.
func cachedCount(count func() (int, error), every time.Duration) func() float64 {
	var mu sync.Mutex
	var last float64
	var at time.Time
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		if !at.IsZero() && time.Since(at) < every {
			return last
		}
		if n, err := count(); err == nil {
			last, at = float64(n), time.Now()
		}
		return last
	}
}

// storeWriteObserver routes the store's write timings (the store's
// options are fixed by whichever config opened it) to the histogram of
// the config that used it last.
type storeWriteObserver struct {
	h atomic.Pointer[prometheus.HistogramVec]
}

func (o *storeWriteObserver) observe(op string, d time.Duration) {
	if h := o.h.Load(); h != nil {
		h.WithLabelValues(op).Observe(d.Seconds())
	}
}

// metricsOrg is orgID if that organization exists, else unknownOrg.
func metricsOrg(st *store.Store, orgID string) string {
	if orgID == "" {
		return unknownOrg
	}
	if _, err := st.GetOrg(orgID); err != nil {
		return unknownOrg
	}
	return orgID
}

// samlRefusalReason maps the reasons the ACS refuses with (free text,
// partly from errors) onto a fixed set.
func samlRefusalReason(reason string) string {
	switch {
	case reason == "org inactive":
		return "org_inactive"
	case reason == "no outstanding request for this browser":
		return "no_request"
	case reason == "AuthnRequest already answered":
		return "replay"
	case reason == "asserted email outside the org's verified domains":
		return "domain_not_verified"
	case reason == "user deactivated":
		return "user_deactivated"
	case reason == "not in the admin group":
		return "not_authorized"
	case reason == errIdentityMismatch.Error():
		return "identity_mismatch"
	case strings.HasPrefix(reason, "SAML response refused"):
		return "invalid_response"
	}
	return "other"
}

// observeSAMLSignIn counts a SAML sign-in outcome (see Gateway.audit).
func (g *Gateway) observeSAMLSignIn(st *gatewayState, orgID, outcome string, details map[string]string) {
	m := g.app.metrics
	if m == nil {
		return
	}
	reason := ""
	if outcome != "success" {
		reason = samlRefusalReason(details["reason"])
	}
	m.signIns.WithLabelValues(metricsOrg(st.store, orgID), authSAML, outcome, reason).Inc()
}

// observePasswordSignIn counts a password sign-in, throttled ones
// included (the audit trail records only the first of those).
func (g *Gateway) observePasswordSignIn(st *gatewayState, res local.Result) {
	m := g.app.metrics
	if m == nil {
		return
	}
	orgID, method := "", local.MethodPassword
	if res.Org != nil {
		orgID = res.Org.ID
		if res.User != nil && res.User.ID == res.Org.BackupLogin {
			method = local.MethodBackup
		}
	}
	outcome, reason := "denied", string(res.Outcome)
	switch res.Outcome {
	case local.OutcomeSuccess:
		outcome, reason = "success", ""
	case local.OutcomeBadCredentials:
		outcome = "failure"
	case local.OutcomeLocked, local.OutcomeBusy:
		m.throttled.WithLabelValues("password").Inc()
	}
	if !knownPasswordOutcomes[res.Outcome] {
		reason = "other"
	}
	m.signIns.WithLabelValues(metricsOrg(st.store, orgID), method, outcome, reason).Inc()
}

var knownPasswordOutcomes = map[local.Outcome]bool{
	local.OutcomeSuccess: true, local.OutcomeBadCredentials: true, local.OutcomeLocked: true,
	local.OutcomeBusy: true, local.OutcomeOverloaded: true, local.OutcomeDisabled: true,
	local.OutcomeForeignDomain: true, local.OutcomeUseSSO: true, local.OutcomeSSOOnly: true,
}

// scimResources are the resource labels; any other path segment is
// "other".
var scimResources = map[string]bool{
	"Users": true, "Groups": true, "ServiceProviderConfig": true, "ResourceTypes": true, "Schemas": true, "Bulk": true, "Me": true,
}

// scimLabels reads the org, resource and operation of a SCIM request from
// its path (<prefix>/scim/<org>/v2/<Resource>[/<id>]).
func scimLabels(rest string, method string) (orgID, resource, operation string) {
	parts := strings.Split(strings.TrimPrefix(rest, "/scim/"), "/")
	orgID = parts[0]
	resource, withID, search := "other", false, false
	if len(parts) >= 3 && parts[1] == "v2" {
		if scimResources[parts[2]] {
			resource = parts[2]
		}
		search = parts[2] == ".search" || (len(parts) >= 4 && parts[3] == ".search")
		withID = !search && len(parts) >= 4 && parts[3] != ""
	}
	switch {
	case search && method == http.MethodPost:
		operation = "search"
	case method == http.MethodGet && withID:
		operation = "get"
	case method == http.MethodGet:
		operation = "list"
	case method == http.MethodPost:
		operation = "create"
	case method == http.MethodPut:
		operation = "replace"
	case method == http.MethodPatch:
		operation = "patch"
	case method == http.MethodDelete:
		operation = "delete"
	default:
		operation = "other"
	}
	return orgID, resource, operation
}

// serveSCIM passes a SCIM request to the SCIM server and counts it.
func (g *Gateway) serveSCIM(st *gatewayState, w http.ResponseWriter, r *http.Request, rest string) {
	m := g.app.metrics
	if m == nil {
		st.scim.ServeHTTP(w, r)
		return
	}
	sw := &statusWriter{ResponseWriter: w}
	st.scim.ServeHTTP(sw, r)
	orgID, resource, operation := scimLabels(rest, r.Method)
	status := sw.status
	if status == 0 {
		status = http.StatusOK
	}
	if status == http.StatusTooManyRequests {
		m.throttled.WithLabelValues("scim").Inc()
	}
	m.scim.WithLabelValues(metricsOrg(st.store, orgID), resource, operation, statusLabel(status)).Inc()
}

// statusLabel keeps the status label to real HTTP codes.
func statusLabel(code int) string {
	if code < 100 || code > 599 {
		return "other"
	}
	return strconv.Itoa(code)
}

// statusWriter records the response status.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// observeRecheck counts re-check cache hits and misses.
func (g *Gateway) observeRecheck(hit bool) {
	if m := g.app.metrics; m != nil {
		if hit {
			m.recheckHit.Inc()
		} else {
			m.recheckMiss.Inc()
		}
	}
}
