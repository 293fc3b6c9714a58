package caddymodule

import (
	"encoding/json"
	"strings"
	"testing"
)

// caddyfileWith wraps a site body in a Caddyfile with the sso app.
func caddyfileWith(site string) string {
	return "{\n\tsso {\n\t\tbase_url https://app.example.com\n\t}\n}\n\napp.example.com {\n" + site + "\n}\n"
}

// TestAdaptRefusesGatewayMatchers is the README slip of issue 10: a
// leading path after sso_gateway is a matcher, which ran the gateway only
// for /sso and proxied everything else without sign-in. `caddy adapt`
// (and so validate, run, reload) now refuses it, and any argument.
func TestAdaptRefusesGatewayMatchers(t *testing.T) {
	for _, tc := range []struct {
		name, site string
		want       []string
	}{
		{"path matcher as prefix", "\tsso_gateway /sso {\n\t\tpublic_paths /healthz\n\t}\n\treverse_proxy 127.0.0.1:19382",
			[]string{`path ["/sso"]`, "does not cover GET /sso/login", "public_paths/protected_paths"}},
		{"matcher and prefix", "\tsso_gateway /a /b\n\treverse_proxy 127.0.0.1:19382",
			[]string{"sso_gateway takes no arguments", `"/b"`}},
		{"plain argument", "\tsso_gateway sso\n\treverse_proxy 127.0.0.1:19382",
			[]string{"sso_gateway takes no arguments", `"sso"`}},
		{"named matcher missing the endpoints", "\t@app path /app/*\n\tsso_gateway @app\n\treverse_proxy 127.0.0.1:19382",
			[]string{`path ["/app/*"]`, "does not cover GET /sso/login"}},
		{"prefix inside the matcher but SCIM outside", "\t@m path /sso/login /sso/saml/*\n\tsso_gateway @m\n\treverse_proxy 127.0.0.1:19382",
			[]string{"does not cover POST /sso/logout"}},
		{"method matcher", "\t@get method GET\n\tsso_gateway @get\n\treverse_proxy 127.0.0.1:19382",
			[]string{`method ["GET"]`, "does not cover POST /sso/login"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := adapt(t, caddyfileWith(tc.site))
			if err == nil {
				t.Fatal("adapted without an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestAdaptKeepsMatchersThatCoverTheGateway: a matcher that lets the
// gateway's endpoints through adapts (the warning comes at start, see
// TestBypassMatcherWarnsUnlessAllowed), and so does an enclosing handle,
// which only the check at start can see.
func TestAdaptKeepsMatchersThatCoverTheGateway(t *testing.T) {
	for _, site := range []string{
		"\t@private not path /public/*\n\tsso_gateway @private {\n\t\tallow_bypass\n\t}\n\treverse_proxy 127.0.0.1:19382",
		"\tsso_gateway * {\n\t\tprefix /auth\n\t}\n\treverse_proxy 127.0.0.1:19382",
		"\thandle /app/* {\n\t\tsso_gateway\n\t\treverse_proxy 127.0.0.1:19382\n\t}",
	} {
		cfg, err := adapt(t, caddyfileWith(site))
		if err != nil {
			t.Errorf("%s: %v", site, err)
			continue
		}
		raw, _ := json.Marshal(cfg)
		if !strings.Contains(string(raw), `"handler":"sso_gateway"`) {
			t.Errorf("%s: no gateway in %s", site, raw)
		}
	}
}

// TestCaddyfileRefusesNegativeDurations: `session_lifetime -5m` used to
// become the 8h default without a word.
func TestCaddyfileRefusesNegativeDurations(t *testing.T) {
	for _, opt := range []string{"session_lifetime", "session_idle_timeout", "authn_request_ttl", "invite_ttl", "domain_recheck_interval"} {
		_, err := adapt(t, "{\n\tsso {\n\t\tbase_url https://app.example.com\n\t\t"+opt+" -5m\n\t}\n}\n:80\n")
		if err == nil || !strings.Contains(err.Error(), opt+" -5m") || !strings.Contains(err.Error(), "negative") {
			t.Errorf("%s -5m: want an error naming it, got %v", opt, err)
		}
	}
}

func TestWeakKey(t *testing.T) {
	for _, k := range []string{
		"",
		"short-but-random-Qx7#p",
		strings.Repeat("a", 40),
		strings.Repeat("Ab3$", 10),
		"0123456789abcdefghijklmnopqrstuvwxyz",
		"xK9#mQ2$zzzzzzzzzLp4&wR7*tY1!uI8",
		"change-me-to-a-long-random-secret-value",
		"<secret of 32+ characters, random please>",
		"an-example-session-key-of-32-characters!",
		"your-secret-key-goes-here-Qx7#p2Lm9",
	} {
		if weakKey(k) == "" {
			t.Errorf("%q passed as a session key", k)
		}
	}
	for _, k := range []string{
		"3q2+7wXYd0Kk1m9VbN4pZr8sTu6Hj5Ga",         // 32 random base64 characters
		"9f86d081884c7d659a2feaa0c55ad015",         // hex of 16 random bytes
		"Jx1NqVw8-tR2zPc5_Lm7bH3dKs9Fy4Ge6UaW0oQi", // base64url
	} {
		if why := weakKey(k); why != "" {
			t.Errorf("%q refused: %s", k, why)
		}
	}
}

func TestCheckSessionKeyNeverEchoesTheKey(t *testing.T) {
	for _, k := range []string{"{env.SSOGATE_SESSION_KEY_THAT_IS_NOT_SET_AT_ALL}", "change-me-to-a-long-random-secret-value", "tooshort"} {
		err := checkSessionKey("session_keys[0]", k)
		if err == nil || !strings.Contains(err.Error(), "session_keys[0]") || strings.Contains(err.Error(), k) {
			t.Errorf("%q: want an error naming the option but not the key, got %v", k, err)
		}
	}
}
