package caddymodule

import (
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// TestOAuth2ProxyPresetNamesAndMeanings pins the preset to oauth2-proxy's
// names: X-Forwarded-User is the IdP's identifier (the subject field),
// and X-Auth-Request-* carries the same values.
func TestOAuth2ProxyPresetNamesAndMeanings(t *testing.T) {
	h, ok := resolveHeaders(PresetOAuth2Proxy, nil)
	if !ok {
		t.Fatal("preset unknown")
	}
	v := identity{UserID: "uuid-1", User: "alice@acme.com", Email: "alice@acme.com", Groups: []string{"a", "b"},
		Subject: "00u1okta"}.values()
	r := httptest.NewRequest("GET", "/", nil)
	h.apply(r, v)
	want := map[string]string{
		"X-Forwarded-User": "00u1okta", "X-Auth-Request-User": "00u1okta",
		"X-Forwarded-Email": "alice@acme.com", "X-Auth-Request-Email": "alice@acme.com",
		"X-Forwarded-Preferred-Username": "alice@acme.com", "X-Auth-Request-Preferred-Username": "alice@acme.com",
		"X-Forwarded-Groups": "a,b", "X-Auth-Request-Groups": "a,b",
		"X-Sso-User-Id": "uuid-1",
	}
	for name, value := range want {
		if got := r.Header.Get(name); got != value {
			t.Errorf("%s = %q, want %q", name, got, value)
		}
	}
}

// TestHeaderOverrideCannotCollideWithMirror refuses an override that would
// send another field under a name the preset's mirror already uses.
func TestHeaderOverrideCannotCollideWithMirror(t *testing.T) {
	o := &HeaderNames{User: "X-Auth-Request-Email"}
	h, _ := resolveHeaders(PresetOAuth2Proxy, o)
	err := checkHeaders(o, h)
	if err == nil || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("got %v, want a duplicate-name error", err)
	}
	// Overriding email itself drops its mirror, so no collision.
	o = &HeaderNames{Email: "X-Auth-Request-Email"}
	h, _ = resolveHeaders(PresetOAuth2Proxy, o)
	if err := checkHeaders(o, h); err != nil {
		t.Fatal(err)
	}
}

// TestEveryPresetNameIsStripped: whichever preset the site uses, a client
// can send none of the names any preset (mirrors included) uses.
func TestEveryPresetNameIsStripped(t *testing.T) {
	h, _ := resolveHeaders(PresetDefault, nil)
	got := strippedHeaders(h)
	for _, name := range []string{"X-Auth-Request-User", "X-Auth-Request-Email", "X-Forwarded-User", "X-Sso-Subject", "X-Sso-Jwt"} {
		if !slices.Contains(got, name) {
			t.Errorf("%s not stripped under the default preset: %v", name, got)
		}
	}
}

func TestSignedIdentityCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`sso_gateway {
		signed_identity {
			header X-App-JWT
			audience https://app.example.com urn:app
		}
	}`)
	var g Gateway
	if err := g.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	si := g.SignedIdentity
	if si == nil || si.Header != "X-App-JWT" || !slices.Equal(si.Audience, []string{"https://app.example.com", "urn:app"}) {
		t.Fatalf("parsed %+v", si)
	}
	d = caddyfile.NewTestDispenser("sso_gateway {\n signed_identity\n}")
	g = Gateway{}
	if err := g.UnmarshalCaddyfile(d); err != nil || g.SignedIdentity == nil {
		t.Fatalf("bare signed_identity: %v %+v", err, g.SignedIdentity)
	}
	for _, bad := range []string{
		"sso_gateway {\n signed_identity on\n}",
		"sso_gateway {\n signed_identity {\n bogus 1\n }\n}",
		"sso_gateway {\n signed_identity {\n audience\n }\n}",
	} {
		g = Gateway{}
		if err := g.UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// TestSignedIdentityHeaderIsChecked: the token header obeys the identity
// header rules and cannot share a name with an identity header.
func TestSignedIdentityHeaderIsChecked(t *testing.T) {
	for _, name := range []string{"Authorization", "X-Sso-Email", "Bad Name"} {
		g := Gateway{SignedIdentity: &SignedIdentity{Header: name, Audience: []string{"a"}}}
		g.headers, _ = resolveHeaders("", nil)
		if err := g.validateSignedIdentity(); err == nil {
			t.Errorf("signed_identity header %q accepted", name)
		}
	}
}

// apply's identity headers share one allocation, yet each value is its
// own: a later handler editing one header's values in place, or appending
// to them, leaves every other header (the mirror included) as the gateway
// set it. The {http.auth.user.*} placeholders give the gateway's values,
// also over ones an earlier handler set, and a later handler's Set still
// wins, as when apply set them itself.
func TestHeaderApplyValuesIndependent(t *testing.T) {
	h, _ := resolveHeaders(PresetOAuth2Proxy, nil)
	v := identity{UserID: "uuid-1", User: "alice@acme.com", Email: "alice@acme.com", Name: "Alice", Groups: []string{"a", "b"},
		Org: "acme", AuthMethod: "saml", Subject: "acme/00u1okta"}.values()
	r := httptest.NewRequest("GET", "/", nil)
	repl := caddy.NewReplacer()
	repl.Set("http.auth.user.id", "someone-else")
	repl.Set("http.auth.user.email", "someone@else.test")
	r = r.WithContext(contextWithReplacer(r, repl))
	h.apply(r, v)

	r.Header["X-Forwarded-Email"][0] = "edited"
	r.Header["X-Forwarded-User"] = append(r.Header["X-Forwarded-User"], "appended")
	r.Header["X-Sso-User-Id"][0] = "edited-too"
	for name, want := range map[string][]string{
		"X-Auth-Request-Email":           {"alice@acme.com"},
		"X-Forwarded-Preferred-Username": {"alice@acme.com"},
		"X-Auth-Request-User":            {"acme/00u1okta"},
		"X-Forwarded-User":               {"acme/00u1okta", "appended"},
		"X-Sso-Name":                     {"Alice"},
		"X-Sso-Org":                      {"acme"},
		"X-Forwarded-Groups":             {"a,b"},
	} {
		if got := r.Header[name]; !slices.Equal(got, want) {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}

	want := map[string]string{
		"http.auth.user.id": "uuid-1", "http.auth.user.username": "alice@acme.com", "http.auth.user.email": "alice@acme.com",
		"http.auth.user.name": "Alice", "http.auth.user.groups": "a,b", "http.auth.user.org": "acme",
		"http.auth.user.auth_method": "saml", "http.auth.user.subject": "acme/00u1okta",
	}
	for k, w := range want {
		if got, ok := repl.GetString(k); !ok || got != w {
			t.Errorf("{%s} = %q, %v; want %q", k, got, ok, w)
		}
	}
	if got := repl.ReplaceAll("{http.auth.user.id} {http.auth.user.nope}", "-"); got != "uuid-1 -" {
		t.Errorf("replaced: %q", got)
	}
	repl.Set("http.auth.user.org", "set-later")
	if got, _ := repl.GetString("http.auth.user.org"); got != "set-later" {
		t.Errorf("a later Set: {http.auth.user.org} = %q", got)
	}
}
