// Package upstream is the demo application that `ssogate demo` puts behind
// the gateway: it shows the identity headers it receives, as an HTML page
// or, for clients that accept application/json, as JSON. It trusts the
// headers blindly, as any application behind the gateway does; the gateway
// removes incoming copies of them.
package upstream

import (
	"encoding/json"
	"html/template"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// LogoutPath is where the page's sign-out button posts: the gateway's
// logout endpoint under its default route prefix.
const LogoutPath = "/sso/logout"

// identityPrefixes select the headers shown whatever the configuration: the
// gateway's defaults and the oauth2-proxy preset.
var identityPrefixes = []string{"X-Sso-", "X-Forwarded-", "X-Auth-Request-"}

// Identity is what the JSON answer holds.
type Identity struct {
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers"`
	// JWT is the outcome of checking the signed identity, when the
	// handler has a Verifier.
	JWT *JWTResult `json:"jwt,omitempty"`
}

// Handler answers every path with the identity headers of the request: the
// headers whose names start with X-SSO- or X-Forwarded-, and those named in
// headerNames (for custom header names).
func Handler(headerNames []string) http.Handler {
	return VerifyingHandler(headerNames, nil)
}

// VerifyingHandler is Handler that also checks the gateway's signed
// identity token with v, and shows the outcome and the token's claims.
func VerifyingHandler(headerNames []string, v *Verifier) http.Handler {
	extra := make(map[string]bool, len(headerNames))
	for _, name := range headerNames {
		if name = strings.TrimSpace(name); name != "" {
			extra[http.CanonicalHeaderKey(name)] = true
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := Identity{Path: r.URL.Path, Headers: identityHeaders(r.Header, extra)}
		if v != nil {
			id.JWT = v.Check(r)
		}
		// The page shows who is signed in: never cache it.
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if wantsJSON(r.Header.Get("Accept")) {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(id) // the client hung up, nothing to do
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = pageTemplate.Execute(w, newPage(id))
	})
}

// identityHeaders returns the selected headers by canonical name, several
// values of one header joined with ", " as HTTP allows.
func identityHeaders(h http.Header, extra map[string]bool) map[string]string {
	out := map[string]string{}
	for name, values := range h {
		canonical := http.CanonicalHeaderKey(name)
		if !extra[canonical] && !hasIdentityPrefix(canonical) {
			continue
		}
		if prev, ok := out[canonical]; ok {
			// Only for names net/http could not canonicalize itself.
			values = append([]string{prev}, values...)
		}
		out[canonical] = strings.Join(values, ", ")
	}
	return out
}

func hasIdentityPrefix(name string) bool {
	for _, p := range identityPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// wantsJSON reports whether the Accept header asks for JSON rather than
// HTML: it lists application/json, with a quality above zero, and not
// text/html with a higher quality.
func wantsJSON(accept string) bool {
	jsonQ, htmlQ := -1.0, -1.0
	for _, part := range strings.Split(accept, ",") {
		mediaType, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			q = parseQuality(v)
		}
		switch mediaType {
		case "application/json":
			jsonQ = max(jsonQ, q)
		case "text/html":
			htmlQ = max(htmlQ, q)
		}
	}
	return jsonQ > 0 && jsonQ >= htmlQ
}

// parseQuality parses an Accept q value; an invalid one counts as 0, not
// acceptable.
func parseQuality(v string) float64 {
	q, err := strconv.ParseFloat(v, 64)
	if err != nil || q < 0 || q > 1 {
		return 0
	}
	return q
}

type headerRow struct{ Name, Value string }

type page struct {
	Path       string
	User       string // a readable name for the heading, if any header has one
	Headers    []headerRow
	LogoutPath string
	JWT        *JWTResult
}

// userHeaders are tried in order for the heading.
var userHeaders = []string{"X-Sso-Name", "X-Sso-Email", "X-Sso-User", "X-Forwarded-Preferred-Username", "X-Forwarded-Email", "X-Forwarded-User"}

func newPage(id Identity) page {
	p := page{Path: id.Path, LogoutPath: LogoutPath, JWT: id.JWT}
	for name, value := range id.Headers {
		p.Headers = append(p.Headers, headerRow{name, value})
	}
	slices.SortFunc(p.Headers, func(a, b headerRow) int { return strings.Compare(a.Name, b.Name) })
	for _, name := range userHeaders {
		if v := id.Headers[name]; v != "" {
			p.User = v
			break
		}
	}
	return p
}

var pageTemplate = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Demo application</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;background:#f9fafb;color:#111827;margin:0}
main{max-width:48rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:.5rem;box-shadow:0 1px 3px rgba(0,0,0,.12)}
h1{font-size:1.5rem;margin:0 0 .25rem}
p.path{color:#6b7280;margin:0 0 1.5rem;font-size:.875rem}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:.5rem;border-bottom:1px solid #e5e7eb;vertical-align:top}
td.name{font-family:ui-monospace,monospace;white-space:nowrap}
td.value{font-family:ui-monospace,monospace;word-break:break-all}
.empty{color:#991b1b}
.ok{color:#166534}
button{margin-top:1.5rem;padding:.5rem 1rem;border:1px solid #d1d5db;border-radius:.25rem;background:#fff;cursor:pointer;font-size:.9rem}
</style>
</head>
<body>
<main>
{{if .Headers}}<h1>You are signed in{{with .User}} as {{.}}{{end}}</h1>{{else}}<h1>No identity received</h1>{{end}}
<p class="path">Demo application behind ssogate · path <code>{{.Path}}</code></p>
{{if .Headers}}
<table>
<thead><tr><th>Identity header</th><th>Value</th></tr></thead>
<tbody>
{{range .Headers}}<tr><td class="name">{{.Name}}</td><td class="value">{{.Value}}</td></tr>
{{end}}</tbody>
</table>
{{with .JWT}}{{if .Verified}}<p class="ok">Signed identity (X-SSO-JWT) verified against the gateway's JWKS: sub <code>{{.Claims.Subject}}</code>, org <code>{{.Claims.Org}}</code>, expires {{.Claims.Expiry.Time.UTC.Format "15:04:05"}} UTC.</p>
{{else if .Present}}<p class="empty">Signed identity (X-SSO-JWT) did NOT verify: {{.Error}}</p>
{{else}}<p class="empty">No signed identity (X-SSO-JWT) received.</p>{{end}}{{end}}
{{else}}
<p class="empty">No identity headers were received: is this application reached through the gateway?</p>
{{end}}
<form method="post" action="{{.LogoutPath}}">
<button type="submit">Sign out</button>
</form>
</main>
</body>
</html>
`))
