package caddymodule

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSessionOptionsCaddyfile(t *testing.T) {
	cfg, err := adapt(t, "{\n\tsso {\n\t\tbase_url https://app.example.com\n\t\treauth_window 10m\n\t\thsts_max_age 48h\n\t\tdisable_hsts\n\t}\n}\n:80\n")
	if err != nil {
		t.Fatal(err)
	}
	sso := cfg["apps"].(map[string]any)["sso"].(map[string]any)
	if sso["reauth_window"] != float64(10*time.Minute) || sso["hsts_max_age"] != float64(48*time.Hour) || sso["disable_hsts"] != true {
		t.Errorf("adapted: %v", sso)
	}
	for _, bad := range []string{"reauth_window -1m", "hsts_max_age -1s", "disable_hsts yes", "reauth_window"} {
		if _, err := adapt(t, "{\n\tsso {\n\t\tbase_url https://app.example.com\n\t\t"+bad+"\n\t}\n}\n:80\n"); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

// TestStripOwnCookies: the gateway's cookies go, in either spelling and
// wherever they are in the header; the app's stay as sent.
func TestStripOwnCookies(t *testing.T) {
	for in, want := range map[string]string{
		"a=1; ssogate_session=x; b=2":                "a=1; b=2",
		"__Host-ssogate_device=x;a=\"q\"":            "a=\"q\"",
		"ssogate_csrf=1; __Host-ssogate_authn=2":     "",
		"a=1":                                        "a=1",
		"Ssogate_session=x; ssogate_sessionx=y; c=3": "Ssogate_session=x; ssogate_sessionx=y; c=3",
		";; a=1 ;":                                   ";; a=1 ;", // untouched: nothing of ours
		// Spaces around the name: net/http (and so the gateway) still
		// reads it as the session cookie, so it must not go on.
		"a=1; ssogate_session =x; \tssogate_csrf\t=y": "a=1",
		" ssogate_session=x ; b=2 ":                   "b=2",
	} {
		h := http.Header{"Cookie": {in}}
		stripOwnCookies(h)
		if got := strings.Join(h.Values("Cookie"), " | "); got != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
	}
	// Several Cookie lines (HTTP/2 sends one per cookie): the lines left
	// with nothing go, the others stay in order.
	h := http.Header{"Cookie": {"ssogate_session=x", "a=1", "__Host-ssogate_authn=y; b=2"}}
	stripOwnCookies(h)
	if got := h["Cookie"]; !slices.Equal(got, []string{"a=1", "b=2"}) {
		t.Errorf("several lines: got %q", got)
	}
	h = http.Header{"Cookie": {"ssogate_session=x", "ssogate_csrf=y"}}
	if stripOwnCookies(h); h["Cookie"] != nil {
		t.Errorf("only gateway cookies: Cookie header left: %q", h["Cookie"])
	}
}

func TestSameHeaderName(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"X_SSO_User", "X-Sso-User", true},
		{"x.sso.user", "X-Sso-User", true},
		{"X-SSO_USER", "X-Sso-User", true},
		{"X_SSO_Users", "X-Sso-User", false},
		{"X_SSO_UſER", "X-Sso-User", false}, // no Unicode folding (ſ is not s)
	} {
		if got := sameHeaderName(c.a, c.b); got != c.want {
			t.Errorf("sameHeaderName(%q, %q) = %v", c.a, c.b, got)
		}
	}
}
