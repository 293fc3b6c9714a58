package orgs

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
)

// dnsVerified adds a domain to an organization and verifies it through the
// test DNS server, the way an org admin does.
func (e *env) dnsVerified(orgID, domain string) string {
	e.t.Helper()
	token := e.must(http.StatusCreated, "POST", "/sso/orgs/"+orgID+"/domains", map[string]string{"name": domain}).object(e.t)["token"].(string)
	e.dns.set(domain, []string{TXTPrefix + token})
	if d := e.must(http.StatusOK, "POST", "/sso/orgs/"+orgID+"/domains/"+domain+"/verify", nil).object(e.t); d["verified_by"] != VerifiedByDNS {
		e.t.Fatalf("verified domain = %v", d)
	}
	return token
}

func (e *env) domain(orgID, name string) *store.Domain {
	e.t.Helper()
	d, err := e.store.GetDomain(orgID, name)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// auditCount counts an organization's audit events of one action.
func (e *env) auditCount(orgID, action string) int {
	e.t.Helper()
	events, err := e.store.ListAudit(orgID, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, ev := range events {
		if ev.Action == action {
			n++
		}
	}
	return n
}

// closedUDPAddr is a loopback address where no DNS server listens.
func closedUDPAddr(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

// TestVerifyWhenDNSFails: a DNS server that is down or answers SERVFAIL
// makes Verify fail with a message saying so; the domain stays pending and
// only the check's result is recorded.
func TestVerifyWhenDNSFails(t *testing.T) {
	e := newEnv(t)
	e.createOrg("acme")
	token := e.must(http.StatusCreated, "POST", "/sso/orgs/acme/domains", map[string]string{"name": "acme.com"}).object(t)["token"].(string)
	e.dns.set("acme.com", []string{TXTPrefix + token})

	e.dns.failing("acme.com", true)
	r := e.must(http.StatusConflict, "POST", "/sso/orgs/acme/domains/acme.com/verify", nil).object(t)
	if msg := r["error"].(string); !strings.Contains(msg, "DNS lookup failed") {
		t.Errorf("SERVFAIL: error = %q", msg)
	}
	if d := e.domain("acme", "acme.com"); d.Status != store.DomainPending || !strings.Contains(d.LastResult, "DNS lookup failed") {
		t.Errorf("after SERVFAIL: %+v", d)
	}

	e.svc.Resolver = NewResolver(closedUDPAddr(t))
	r = e.must(http.StatusConflict, "POST", "/sso/orgs/acme/domains/acme.com/verify", nil).object(t)
	if msg := r["error"].(string); !strings.Contains(msg, "DNS lookup") {
		t.Errorf("server down: error = %q", msg)
	}
	if d := e.domain("acme", "acme.com"); d.Status != store.DomainPending || d.VerifiedAt.IsZero() == false {
		t.Errorf("after server down: %+v", d)
	}
	if _, err := e.store.OrgForDomain("acme.com"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a failed lookup routes the domain: %v", err)
	}

	// A server that never answers: the lookup gives up within its bound
	// and says so.
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	e.svc.Resolver = NewResolver(silent.LocalAddr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = e.svc.VerifyDomain(ctx, "tester", "acme", "acme.com", false)
	if ae, ok := AsError(err); !ok || ae.Status != http.StatusConflict || !strings.Contains(ae.Message, "timed out") {
		t.Errorf("silent server: %v", err)
	}
}

// TestRecheckDomains is the periodic re-check: a domain whose TXT record
// disappeared becomes pending, stops routing and is audited as lost;
// SERVFAIL, a dead server or a timeout change nothing; domains the
// operator vouched for are never looked up; only due domains are checked.
func TestRecheckDomains(t *testing.T) {
	e := newEnv(t)
	e.readyOrg("acme", "vouched.com")
	e.createOrg("other")
	e.dnsVerified("acme", "kept.com")
	e.dnsVerified("acme", "flaky.com")
	e.dnsVerified("acme", "moved.com")
	e.dnsVerified("other", "gone.com")
	e.must(http.StatusOK, "POST", "/sso/orgs/acme/activate", nil)
	e.must(http.StatusCreated, "POST", "/sso/orgs/acme/domains", map[string]string{"name": "pending.com"})
	ctx := context.Background()

	// All records in place: everything is checked (but the vouched-for
	// and pending domains) and kept.
	queries := e.dns.count()
	checked, lost, err := e.svc.RecheckDomains(ctx)
	if err != nil || checked != 4 || lost != 0 {
		t.Fatalf("first re-check: checked %d, lost %d, %v", checked, lost, err)
	}
	if n := e.dns.count() - queries; n != 4 {
		t.Errorf("%d DNS queries for 4 domains", n)
	}

	// gone.com's name disappears (NXDOMAIN); moved.com keeps other TXT
	// records only (a new owner's); flaky.com's server fails.
	e.dns.remove("gone.com")
	e.dns.set("moved.com", []string{"v=spf1 -all"}, []string{TXTPrefix + "someone-else"})
	e.dns.failing("flaky.com", true)
	before := e.domain("acme", "flaky.com")
	checked, lost, err = e.svc.RecheckDomains(ctx)
	if err != nil || checked != 4 || lost != 2 {
		t.Fatalf("second re-check: checked %d, lost %d, %v", checked, lost, err)
	}
	for _, c := range []struct{ org, name string }{{"other", "gone.com"}, {"acme", "moved.com"}} {
		d := e.domain(c.org, c.name)
		if d.Status != store.DomainPending || !d.VerifiedAt.IsZero() || d.LastResult == "" {
			t.Errorf("%s after losing its record: %+v", c.name, d)
		}
		if _, err := e.store.OrgForDomain(c.name); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s still routes: %v", c.name, err)
		}
		if n := e.auditCount(c.org, "domain.lost"); n != 1 {
			t.Errorf("%s: %d domain.lost events", c.name, n)
		}
	}
	d := e.domain("acme", "flaky.com")
	if d.Status != store.DomainVerified || !d.VerifiedAt.Equal(before.VerifiedAt) || !strings.Contains(d.LastResult, "DNS lookup failed") || !d.LastCheck.After(before.LastCheck) {
		t.Errorf("flaky.com after SERVFAIL: %+v", d)
	}
	for _, name := range []string{"flaky.com", "kept.com", "vouched.com"} {
		if org, err := e.store.OrgForDomain(name); err != nil || org != "acme" {
			t.Errorf("%s routes to %q, %v", name, org, err)
		}
	}
	if d := e.domain("acme", "vouched.com"); d.VerifiedBy != VerifiedByOperator || d.LastResult != forcedResult {
		t.Errorf("vouched-for domain was checked: %+v", d)
	}
	// The org's Domains step is grey again; it stays active (activation
	// is the admins' and operator's decision), but gone.com no longer
	// reaches it.
	v, err := e.svc.GetOrg("acme")
	if err != nil {
		t.Fatal(err)
	}
	if v.State != store.OrgActive || v.Steps[0].Done || !strings.Contains(v.Steps[0].Todo, "moved.com, pending.com") {
		t.Errorf("after the loss: state %s, domains step %+v", v.State, v.Steps[0])
	}

	// The whole DNS server down: nothing changes.
	e.svc.Resolver = NewResolver(closedUDPAddr(t))
	checked, lost, err = e.svc.RecheckDomains(ctx)
	if err != nil || checked != 2 || lost != 0 {
		t.Errorf("server down: checked %d, lost %d, %v", checked, lost, err)
	}
	if d := e.domain("acme", "kept.com"); d.Status != store.DomainVerified {
		t.Errorf("kept.com with the server down: %+v", d)
	}

	// Only domains not checked within maxAge are due.
	if checked, _, _ := e.svc.RecheckDueDomains(ctx, time.Hour); checked != 0 {
		t.Errorf("re-checked %d domains checked a moment ago", checked)
	}
	if _, err := e.store.UpdateDomain("acme", "kept.com", func(d *store.Domain) error {
		d.LastCheck = time.Now().Add(-2 * time.Hour)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if checked, _, _ := e.svc.RecheckDueDomains(ctx, time.Hour); checked != 1 {
		t.Errorf("re-checked %d domains, want kept.com only", checked)
	}

	// A canceled context stops the pass without touching anything.
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := e.svc.RecheckDomains(canceled); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled re-check: %v", err)
	}

	// A lost domain comes back by verifying it again.
	e.svc.Resolver = NewResolver(e.dns.addr)
	tok := e.domain("acme", "moved.com").Token
	e.dns.set("moved.com", []string{TXTPrefix + tok})
	e.must(http.StatusOK, "POST", "/sso/orgs/acme/domains/moved.com/verify", nil)
	if org, err := e.store.OrgForDomain("moved.com"); err != nil || org != "acme" {
		t.Errorf("re-verified moved.com routes to %q, %v", org, err)
	}
}

// TestRecheckLeavesChangedDomainsAlone: a domain removed and added again
// (new token) while its check was under way is not unverified by the
// answer about the old token.
func TestRecheckLeavesChangedDomainsAlone(t *testing.T) {
	e := newEnv(t)
	e.createOrg("acme")
	e.dnsVerified("acme", "acme.com")
	old := e.domain("acme", "acme.com")
	e.must(http.StatusNoContent, "DELETE", "/sso/orgs/acme/domains/acme.com", nil)
	e.dns.remove("acme.com")
	e.dnsVerified("acme", "acme.com")
	lost, err := e.svc.recheckDomain(context.Background(), old)
	if err != nil || lost {
		t.Fatalf("re-check of the old record: lost %v, %v", lost, err)
	}
	if d := e.domain("acme", "acme.com"); d.Status != store.DomainVerified {
		t.Errorf("the new claim was unverified: %+v", d)
	}
}
