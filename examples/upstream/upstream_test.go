package upstream

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// rawRequest sends a hand-written request, so that header names reach the
// server spelled exactly as written, and returns the response.
func rawRequest(t *testing.T, srv *httptest.Server, path string, headers ...string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: upstream.test\r\nConnection: close\r\n%s\r\n", path, strings.Join(append(headers, ""), "\r\n"))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

var identity = []string{
	"x-sso-user-id: 8f14e45f-ceea-467f-a0e6-9a1b2c3d4e5f",
	"X-SSO-Email: alice@example.com",
	"X-Sso-Name: Alice <b>L.</b>",
	"X-SSO-Groups: Business Account Admins,Engineering",
	"X-Forwarded-Email: alice@example.com",
	"X-Custom-Login: alice",
	"X-Not-Listed: secret",
	"Authorization: Bearer secret-token",
	"Cookie: ssogate=secret-cookie",
}

func TestJSON(t *testing.T) {
	srv := httptest.NewServer(Handler([]string{" x-custom-login ", ""}))
	defer srv.Close()

	resp, body := rawRequest(t, srv, "/some/path?q=1", append(identity, "Accept: application/json")...)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("HTTP %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var got Identity
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	want := map[string]string{
		"X-Sso-User-Id":     "8f14e45f-ceea-467f-a0e6-9a1b2c3d4e5f",
		"X-Sso-Email":       "alice@example.com",
		"X-Sso-Name":        "Alice <b>L.</b>",
		"X-Sso-Groups":      "Business Account Admins,Engineering",
		"X-Forwarded-Email": "alice@example.com",
		"X-Custom-Login":    "alice",
	}
	if got.Path != "/some/path" {
		t.Errorf("path = %q", got.Path)
	}
	if len(got.Headers) != len(want) {
		t.Errorf("headers = %v, want %v", got.Headers, want)
	}
	for k, v := range want {
		if got.Headers[k] != v {
			t.Errorf("header %s = %q, want %q", k, got.Headers[k], v)
		}
	}
	// The raw JSON keys are the canonical names.
	if !strings.Contains(body, `"X-Sso-User-Id"`) {
		t.Errorf("body = %s", body)
	}
}

func TestJSONRepeatedHeader(t *testing.T) {
	srv := httptest.NewServer(Handler(nil))
	defer srv.Close()
	_, body := rawRequest(t, srv, "/", "X-Forwarded-For: 10.0.0.1", "x-forwarded-for: 10.0.0.2", "Accept: application/json")
	var got Identity
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if got.Headers["X-Forwarded-For"] != "10.0.0.1, 10.0.0.2" || len(got.Headers) != 1 {
		t.Errorf("headers = %v", got.Headers)
	}
}

func TestHTML(t *testing.T) {
	srv := httptest.NewServer(Handler([]string{"X-Custom-Login"}))
	defer srv.Close()

	resp, body := rawRequest(t, srv, "/app/<script>", append(identity, "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")...)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("HTTP %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q", resp.Header.Get("Cache-Control"))
	}
	for _, s := range []string{
		"You are signed in as Alice &lt;b&gt;L.&lt;/b&gt;",
		"<td class=\"name\">X-Sso-User-Id</td><td class=\"value\">8f14e45f-ceea-467f-a0e6-9a1b2c3d4e5f</td>",
		"<td class=\"name\">X-Custom-Login</td><td class=\"value\">alice</td>",
		"<td class=\"name\">X-Forwarded-Email</td>",
		`<form method="post" action="/sso/logout">`,
		"&lt;script&gt;",
	} {
		if !strings.Contains(body, s) {
			t.Errorf("page lacks %q:\n%s", s, body)
		}
	}
	for _, s := range []string{"<b>L.</b>", "<script>", "secret", "X-Not-Listed"} {
		if strings.Contains(body, s) {
			t.Errorf("page contains %q", s)
		}
	}
	// Rows are sorted by header name.
	if strings.Index(body, "X-Custom-Login") > strings.Index(body, "X-Forwarded-Email") ||
		strings.Index(body, "X-Forwarded-Email") > strings.Index(body, "X-Sso-Email") {
		t.Error("rows are not sorted by name")
	}
}

func TestHTMLWithoutIdentity(t *testing.T) {
	rec := httptest.NewRecorder()
	Handler(nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	body := rec.Body.String()
	if strings.Contains(body, "You are signed in") || !strings.Contains(body, "No identity headers were received") {
		t.Errorf("page without identity headers:\n%s", body)
	}
}

func TestWantsJSON(t *testing.T) {
	for accept, want := range map[string]bool{
		"":                                  false,
		"application/json":                  true,
		"application/json; charset=utf-8":   true,
		"text/html":                         false,
		"*/*":                               false,
		"text/html, application/json":       true,
		"text/html;q=0.9, application/json": true,
		"application/json;q=0.5, text/html": false,
		"application/json;q=0":              false,
		"application/json;q=bogus":          false,
		"application/json;q=2":              false,
		"garbage;;;, application/json":      true,
	} {
		if got := wantsJSON(accept); got != want {
			t.Errorf("wantsJSON(%q) = %v, want %v", accept, got, want)
		}
	}
}
