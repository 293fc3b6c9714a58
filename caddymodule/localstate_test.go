package caddymodule

import (
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/ssogate/ssogate/caddymodule/local"
)

func TestPasswordHashingCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`sso {
		base_url https://gw.example.com
		invite_ttl 24h
		password_hashing {
			time 4
			memory 128MiB
			threads 2
			max_concurrent 3
			max_queued 40
			max_per_source 4
		}
	}`)
	var a App
	if err := a.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	if a.InviteTTL != caddy.Duration(24*time.Hour) {
		t.Errorf("invite_ttl = %v", a.InviteTTL)
	}
	want := PasswordHashing{Time: 4, MemoryKiB: 128 * 1024, Threads: 2, MaxConcurrent: 3, MaxQueued: 40, MaxPerSource: 4}
	if a.PasswordHashing == nil || *a.PasswordHashing != want {
		t.Errorf("password_hashing = %+v", a.PasswordHashing)
	}
	if err := a.PasswordHashing.provision(); err != nil {
		t.Errorf("provision: %v", err)
	}

	for _, bad := range []string{
		"sso {\n password_hashing {\n bogus 1\n }\n}",
		"sso {\n password_hashing {\n memory lots\n }\n}",
		"sso {\n password_hashing {\n threads 300\n }\n}",
		"sso {\n password_hashing {\n time\n }\n}",
		"sso {\n password_hashing {\n max_per_source -1\n }\n}",
		"sso {\n password_hashing extra {\n }\n}",
		"sso {\n invite_ttl soon\n}",
	} {
		var a App
		if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)); err == nil {
			t.Errorf("accepted:\n%s", bad)
		}
	}
}

func TestPasswordHashingProvision(t *testing.T) {
	var p PasswordHashing
	if err := p.provision(); err != nil || p.params() != local.DefaultParams {
		t.Errorf("defaults: %+v, %v", p.params(), err)
	}
	for _, bad := range []PasswordHashing{{MemoryKiB: 1024}, {Time: 1000}, {MaxConcurrent: -1}, {MaxQueued: -1}, {MaxPerSource: -1}, {MaxQueued: 1 << 40}, {MaxPerSource: 1 << 17}, {MemoryKiB: 4 << 20}} {
		if err := bad.provision(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
