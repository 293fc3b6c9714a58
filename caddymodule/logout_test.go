package caddymodule

import (
	"net/url"
	"testing"
)

func TestSameOriginReturn(t *testing.T) {
	base, _ := url.Parse("https://app.example.com")
	g := &Gateway{app: &App{baseURL: base}}
	for raw, want := range map[string]string{
		"/reports?week=3":                               "/reports?week=3",
		"https://app.example.com/a/b?c=d":               "/a/b?c=d",
		"https://APP.example.com/x":                     "/x",
		"HTTPS://app.example.com":                       "/",
		"http://app.example.com/x":                      "", // another scheme is another origin
		"https://app.example.com:8443/x":                "",
		"https://app.example.com.evil.example/x":        "",
		"https://evil.example/https://app.example.com/": "",
		"https://user@app.example.com/x":                "",
		"//evil.example/x":                              "",
		"/\\evil.example":                               "",
		"javascript:alert(1)":                           "",
		"app.example.com/x":                             "",
		"https://app.example.com//evil.example/":        "",
	} {
		if got := g.sameOriginReturn(raw); got != want {
			t.Errorf("%q → %q, want %q", raw, got, want)
		}
	}
}
