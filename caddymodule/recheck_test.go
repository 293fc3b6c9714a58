package caddymodule

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/ssogate/ssogate/caddymodule/orgs"
	"github.com/ssogate/ssogate/store"
)

func TestDomainRecheckIntervalOption(t *testing.T) {
	cfg, err := adapt(t, "{\n sso {\n base_url https://gw.example.com\n domain_recheck_interval 12h\n }\n}\n:80\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg["apps"].(map[string]any)["sso"].(map[string]any)["domain_recheck_interval"]; got != float64(12*time.Hour) {
		t.Errorf("domain_recheck_interval = %v", got)
	}
	if _, err := adapt(t, "{\n sso {\n domain_recheck_interval daily\n }\n}\n:80\n"); err == nil {
		t.Error("a malformed interval was accepted")
	}
}

// TestRecheckLoop runs the app's periodic re-check with a short interval:
// passes run until the loop is stopped, and a DNS server that does not
// answer leaves a verified domain verified (only the check is recorded).
func TestRecheckLoop(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc := orgs.New(st, nil, zaptest.NewLogger(t))
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := pc.LocalAddr().String()
	pc.Close()
	svc.Resolver = orgs.NewResolver(dead)

	if err := st.CreateOrg(&store.Org{ID: "acme", Name: "Acme", State: store.OrgActive}); err != nil {
		t.Fatal(err)
	}
	long := time.Now().Add(-48 * time.Hour)
	if err := st.AddDomain(&store.Domain{Name: "acme.com", OrgID: "acme", Token: "t", Status: store.DomainVerified,
		VerifiedBy: orgs.VerifiedByDNS, VerifiedAt: long, LastCheck: long}); err != nil {
		t.Fatal(err)
	}

	a := &App{logger: zaptest.NewLogger(t)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go a.recheckDomains(ctx, svc, 50*time.Millisecond, done)
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err := st.GetDomain("acme", "acme.com")
		if err != nil {
			t.Fatal(err)
		}
		if d.LastCheck.After(long) {
			if d.Status != store.DomainVerified || !strings.Contains(d.LastResult, "DNS lookup") {
				t.Errorf("after a pass with DNS down: %+v", d)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no re-check pass ran")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the re-check loop did not stop")
	}
	if owner, err := st.OrgForDomain("acme.com"); err != nil || owner != "acme" {
		t.Errorf("acme.com routes to %q, %v", owner, err)
	}
}
