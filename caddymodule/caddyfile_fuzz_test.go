package caddymodule

import (
	"encoding/json"
	"net/url"
	"reflect"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// FuzzCaddyfile feeds arbitrary Caddyfile text to the unmarshallers of the
// `sso` global option and of the `sso_gateway` directive. Invariants: no
// panic; what parses survives the JSON round trip Caddy puts it through
// (caddyconfig.JSON, then json.Unmarshal into a fresh value) unchanged;
// a gateway that parses has a header preset that resolves or is refused;
// Validate (what Caddy calls after Provision) answers without panicking.
func FuzzCaddyfile(f *testing.F) {
	for _, s := range []struct{ global, directive string }{
		{"sso {\n base_url https://app.example.com\n storage_path /var/lib/ssogate\n session_key {$SSOGATE_SESSION_KEY}\n}",
			"sso_gateway {\n prefix /sso\n public_paths /healthz /favicon.ico /static/*\n header_preset default\n}"},
		{"sso {\n session_lifetime 8h\n session_idle_timeout 1h\n authn_request_ttl 10m\n invite_ttl 72h\n domain_recheck_interval 24h\n}",
			"sso_gateway /auth {\n public_paths /a /b/*\n protected_paths /app/*\n header_preset oauth2-proxy\n header email X-Mail\n header org -\n}"},
		{"sso {\n password_hashing {\n time 3\n memory 64MiB\n threads 4\n max_concurrent 2\n }\n}",
			"sso_gateway {\n header USER_ID X-Id\n header groups \"X Groups\"\n}"},
		{"sso {\n dns_resolver 127.0.0.1:53\n session_key a\n session_key b\n}", "sso_gateway /a /b"},
		{"sso {\n session_lifetime forever\n}", "sso_gateway {\n bogus 1\n}"},
		{"sso extra", "sso_gateway {\n header_preset\n}"},
		{"sso {\n password_hashing {\n memory -1\n }\n}", "sso_gateway {\n header nope X-A\n}"},
		{"sso {\n password_hashing\n}", "sso_gateway {\n public_paths\n}"},
		{"sso {\n password_hashing {\n time 99999999999999999999\n}\n}", "sso_gateway `a` {\n prefix \"\"\n}"},
		{"sso {\n session_lifetime -5m\n session_key {env.SSOGATE_SESSION_KEY}\n}", "sso_gateway {\n allow_bypass\n header email \"X Bad\"\n}"},
		{"sso {\n base_url http://127.0.0.1:8080\n session_key 3q2+7wXYd0Kk1m9VbN4pZr8sTu6Hj5Ga\n session_idle_timeout 9h\n}",
			"sso_gateway {\n prefix /a/../b\n public_paths {http.request.uri} /x[\n header user Cookie\n}"},
	} {
		f.Add(s.global, s.directive)
	}
	f.Fuzz(func(t *testing.T, global, directive string) {
		if d, ok := dispenser(global); ok {
			var a App
			if err := a.UnmarshalCaddyfile(d); err == nil {
				var back App
				roundTrip(t, &a, &back)
				if back.PasswordHashing == nil {
					back.PasswordHashing = new(PasswordHashing) // as Provision does
				}
				_ = back.validate()
			}
		}
		if d, ok := dispenser(directive); ok {
			var g Gateway
			if err := g.UnmarshalCaddyfile(d); err == nil {
				var back Gateway
				roundTrip(t, &g, &back)
				_, _ = resolveHeaders(g.HeaderPreset, g.Headers)
				back.app = &App{baseURL: &url.URL{Scheme: "https", Host: "app.example.com"}}
				back.secure = true
				_ = back.validate()
			}
		}
	})
}

// dispenser tokenizes src as Caddy does; caddyfile.NewTestDispenser would
// exit the process on a lexer error.
func dispenser(src string) (*caddyfile.Dispenser, bool) {
	tokens, err := caddyfile.Tokenize([]byte(src), "Caddyfile")
	if err != nil || len(tokens) == 0 {
		return nil, false
	}
	return caddyfile.NewDispenser(tokens), true
}

// roundTrip checks that v survives JSON encoding, as Caddy stores a parsed
// module in its config, into back.
func roundTrip[T any](t *testing.T, v, back *T) {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("parsed config does not encode: %v (%+v)", err, v)
	}
	if err := json.Unmarshal(raw, back); err != nil {
		t.Fatalf("parsed config does not decode: %v\n%s", err, raw)
	}
	again, err := json.Marshal(back)
	if err != nil || string(again) != string(raw) {
		t.Fatalf("parsed config changes in a JSON round trip:\n%s\n%s", raw, again)
	}
	if !reflect.DeepEqual(v, back) {
		// Equal JSON but unequal values: only unexported or nil/empty
		// differences, which Caddy's own round trip loses as well.
		t.Logf("values differ after an equal JSON round trip: %+v vs %+v", v, back)
	}
}
