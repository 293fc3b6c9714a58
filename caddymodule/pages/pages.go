// Package pages renders the few HTML pages end users see from the gateway
// itself: the sign-in page and the messages that explain a refusal. They
// are server-rendered with html/template from embedded files, need no
// JavaScript, and say what happened and what to do next.
package pages

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"
)

//go:embed templates/*.html
var files embed.FS

// Renderer holds the parsed templates.
type Renderer struct {
	t *template.Template
}

// New parses the embedded templates.
func New() (*Renderer, error) {
	t, err := template.ParseFS(files, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("pages: parsing templates: %w", err)
	}
	return &Renderer{t: t}, nil
}

// Login is the data of the sign-in page.
type Login struct {
	Prefix   string // route prefix, for form actions
	Email    string // echoed back after an error
	ReturnTo string // same-origin path to go to after sign-in
	Error    string // shown next to the email field
	Notice   string // e.g. "You have signed out."
}

// Message is the data of a page that explains an outcome.
type Message struct {
	Prefix string
	Title  string
	Text   string
	// Hint says what the user can do about it.
	Hint string
	// RetryURL, when set, is offered as a way back to the sign-in page.
	RetryURL string
	// Reference, when set, is the code that finds this refusal in the
	// organization's sign-in attempts.
	Reference string
}

// Logout is the data of the sign-out confirmation page.
type Logout struct {
	Prefix   string
	SignedIn bool
	Email    string // of the session, if it has one
	ReturnTo string // same-origin path to go to afterwards
}

// Reauth is the data of the page that asks an admin to sign in again
// before a sensitive change.
type Reauth struct {
	Prefix   string
	Text     string
	CSRF     string // the session's CSRF token
	ReturnTo string // same-origin path to come back to
}

// Render writes a page with the given status. Templates are executed into
// a buffer first so a template error never leaves a half-written page.
func (r *Renderer) Render(w http.ResponseWriter, status int, name string, data any) {
	csp := defaultCSP
	if name == "login" || name == "reauth" || name == "logout" || name == "attempts" { // attempts: its Test sign-in form goes to the IdP
		csp = loginCSP
	}
	r.render(w, status, name, data, csp)
}

// defaultCSP admits no script at all.
const defaultCSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// loginCSP is defaultCSP without form-action: the sign-in (and re-auth,
// Test sign-in, and sign-out, which may go on to the IdP's single logout) form's post is
// answered with a redirect to the organization's IdP, and browsers
// (Chromium) apply form-action to the redirect's target too, which can be
// any IdP.
const loginCSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"

func (r *Renderer) render(w http.ResponseWriter, status int, name string, data any, csp string) {
	var buf bytes.Buffer
	if err := r.t.ExecuteTemplate(&buf, name+".html", data); err != nil {
		http.Error(w, "internal error rendering page", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", csp)
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
