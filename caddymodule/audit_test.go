package caddymodule

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/ssogate/ssogate/store"
)

func TestAuditConfigCaddyfile(t *testing.T) {
	var a App
	err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`sso {
		base_url https://gw.example.com
		audit {
			max_age 30d
			max_events 5000
			aggregate_window 30s
		}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	want := AuditConfig{MaxAge: caddy.Duration(30 * 24 * time.Hour), MaxEvents: 5000, AggregateWindow: caddy.Duration(30 * time.Second)}
	if a.Audit == nil || *a.Audit != want {
		t.Fatalf("audit = %+v", a.Audit)
	}
	if err := a.Audit.provision(); err != nil {
		t.Errorf("provision: %v", err)
	}
	if p := a.Audit.policy(); p != (store.AuditPolicy{MaxAge: 30 * 24 * time.Hour, MaxEvents: 5000, Window: 30 * time.Second}) {
		t.Errorf("policy = %+v", p)
	}
	// The JSON form an adapted Caddyfile gives round-trips.
	raw, err := json.Marshal(a.Audit)
	if err != nil {
		t.Fatal(err)
	}
	var back AuditConfig
	if err := json.Unmarshal(raw, &back); err != nil || back != want {
		t.Errorf("JSON %s gave %+v, %v", raw, back, err)
	}

	for _, bad := range []string{
		"sso {\n audit {\n bogus 1\n }\n}",
		"sso {\n audit {\n max_age forever\n }\n}",
		"sso {\n audit {\n max_age -1h\n }\n}",
		"sso {\n audit {\n max_events many\n }\n}",
		"sso {\n audit {\n max_events 0\n }\n}",
		"sso {\n audit {\n aggregate_window\n }\n}",
		"sso {\n audit extra {\n }\n}",
	} {
		var a App
		if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)); err == nil {
			t.Errorf("accepted:\n%s", bad)
		}
	}
}

func TestAuditConfigProvision(t *testing.T) {
	var none *AuditConfig
	if none.policy() != (store.AuditPolicy{}) {
		t.Error("no audit block must leave the store's defaults")
	}
	for _, bad := range []AuditConfig{
		{MaxAge: caddy.Duration(time.Minute)},
		{MaxAge: -1},
		{MaxEvents: 10},
		{MaxEvents: -5},
		{AggregateWindow: caddy.Duration(time.Millisecond)},
		{AggregateWindow: caddy.Duration(2 * time.Hour)},
	} {
		if err := bad.provision(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
