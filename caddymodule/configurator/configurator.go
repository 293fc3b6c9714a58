// Package configurator serves the org admin's configurator page
// ({prefix}/admin/): the seven steps that connect an organization's
// identity provider to the gateway (SPEC §6), as one server-rendered page
// whose forms post back to it.
//
// The package knows nothing of sessions or cookies: the gateway passes in
// who the admin is (Authorize) and how to check a form's CSRF token
// (CheckCSRF). Every change goes through the orgs.Service, the same code
// the JSON APIs call, so the page and the APIs obey the same rules.
//
// Every post redirects back to the page (Post/Redirect/Get), so a reload
// never repeats it: a success with a notice code in the query; a refusal,
// or a new SCIM token, through a one-time flash (Flashes) that the page
// reads once: the error next to the field at fault with the input kept,
// or the token, shown that once and never put in a URL.
package configurator

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ssogate/ssogate/caddymodule/orgs"
	"github.com/ssogate/ssogate/caddymodule/pages"
	"github.com/ssogate/ssogate/store"
)

// Admin is the signed-in org admin a request acts for.
type Admin struct {
	OrgID  string
	UserID string
	Actor  string // name for the audit trail and the page header
	CSRF   string // the session's CSRF token, put in every form
	// Session keys the admin's flashes; it never leaves the server.
	Session string
	// FlashKey seals the admin's flashes: a secret only the admin's
	// browser brings back (session.Manager.BrowserSecret).
	FlashKey []byte
}

// Handler serves the configurator page and its form posts under
// {Prefix}/admin.
type Handler struct {
	Orgs   *orgs.Service
	Prefix string // the gateway's route prefix, e.g. /sso
	Pages  *pages.Renderer
	// Flashes carry a post's outcome across its redirect.
	Flashes *Flashes

	// Authorize returns the org admin of the request, or answers the
	// request itself (sign-in page, 403) and returns false.
	Authorize func(w http.ResponseWriter, r *http.Request) (*Admin, bool)
	// CheckCSRF parses a form post and checks that it came from the
	// gateway's own page (origin and token), or answers it and returns
	// false.
	CheckCSRF func(w http.ResponseWriter, r *http.Request, a *Admin) bool
	// Fail answers a request that failed for an internal reason.
	Fail func(w http.ResponseWriter, r *http.Request, err error)
}

// heading is a step's heading, in the words of the vendor guide the page
// follows.
func heading(step, fallback string) string {
	switch step {
	case orgs.StepDomains:
		return "Configure organization’s domains"
	case orgs.StepRegister:
		return "Register the enterprise application"
	case orgs.StepGroups:
		return "Configure user groups mapping"
	case orgs.StepSAML:
		return "Configure SAML integration"
	case orgs.StepSCIM:
		return "Configure SCIM integration"
	case orgs.StepUsers:
		return "Add users to the application groups"
	case orgs.StepBackup:
		return "Configure backup login"
	}
	return fallback
}

// notice is the flash message of a successful post, by the code its
// redirect carries; unknown codes show nothing.
func notice(code string) string {
	switch code {
	case "started":
		return "Configuration started. Work through the seven steps below in any order; what you enter is kept."
	case "domain-added":
		return "Domain added. Publish its TXT record, then press Verify."
	case "domain-verified":
		return "Domain verified."
	case "domain-removed":
		return "Domain removed."
	case "group-saved":
		return "Sign-in group saved."
	case "config-group-saved":
		return "Saved: who may change single sign-on."
	case "saml-saved":
		return "SAML settings saved."
	case "step-saved":
		return "Saved."
	case "backup-saved":
		return "Backup login changed."
	case "activated":
		return "The integration is active: people in your domains now sign in with single sign-on."
	case "deactivated":
		return "The integration is deactivated: single sign-on is off and SSO sessions have ended."
	}
	return ""
}

// Handles reports whether rest (the path after the prefix) is one of the
// configurator's routes.
func Handles(rest string) bool {
	switch rest {
	case "/admin", "/admin/", "/admin/start", "/admin/domains", "/admin/domains/verify", "/admin/domains/remove",
		"/admin/group", "/admin/config-group", "/admin/saml", "/admin/scim-token", "/admin/backup", "/admin/activate", "/admin/deactivate":
		return true
	}
	step, ok := strings.CutPrefix(rest, "/admin/steps/")
	return ok && step != "" && !strings.Contains(step, "/")
}

// ServeHTTP serves one configurator route (see Handles).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, h.Prefix)
	if rest == "/admin" {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.methodNotAllowed(w, "GET")
			return
		}
		http.Redirect(w, r, h.Prefix+"/admin/", http.StatusMovedPermanently)
		return
	}
	if rest == "/admin/" {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.methodNotAllowed(w, "GET")
			return
		}
		a, ok := h.Authorize(w, r)
		if !ok {
			return
		}
		q := r.URL.Query()
		st := &state{notice: notice(q.Get("done")), open: q.Get("open")}
		if id := q.Get("r"); id != "" {
			f := &state{}
			ok, err := h.Flashes.Take(a.OrgID, a.Session, a.FlashKey, id, f)
			if err != nil {
				h.Fail(w, r, err)
				return
			}
			if ok {
				st = f
			} else {
				st.notice = "This page was reloaded: it shows the current settings, and a one-time result (such as a new token) is not shown again."
			}
		}
		h.render(w, r, a, http.StatusOK, st)
		return
	}
	if r.Method != http.MethodPost {
		h.methodNotAllowed(w, "POST")
		return
	}
	a, ok := h.Authorize(w, r)
	if !ok || !h.CheckCSRF(w, r, a) {
		return
	}
	f := r.PostForm
	switch {
	case rest == "/admin/start":
		_, err := h.Orgs.StartConfiguring(a.Actor, a.OrgID, a.UserID)
		h.after(w, r, a, err, "started", "", &state{})
	case rest == "/admin/domains":
		_, err := h.Orgs.AddDomain(a.Actor, a.OrgID, f.Get("domain"))
		h.after(w, r, a, err, "domain-added", orgs.StepDomains, &state{form: "domain", field: "name", newDomain: f.Get("domain")})
	case rest == "/admin/domains/verify":
		name := f.Get("domain")
		// Bounded, so a slow resolver cannot hold the page for long; the
		// orgs service has its own, shorter, lookup timeout too.
		ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
		defer cancel()
		_, err := h.Orgs.VerifyDomain(ctx, a.Actor, a.OrgID, name, false)
		h.after(w, r, a, err, "domain-verified", orgs.StepDomains, &state{form: "verify." + name, rowError: true})
	case rest == "/admin/domains/remove":
		name := f.Get("domain")
		err := h.Orgs.RemoveDomain(a.Actor, a.OrgID, name)
		h.after(w, r, a, err, "domain-removed", orgs.StepDomains, &state{form: "verify." + name, rowError: true})
	case rest == "/admin/group":
		_, err := h.Orgs.SetAdminGroup(a.Actor, a.OrgID, f.Get("name"), f.Get("id"))
		h.after(w, r, a, err, "group-saved", orgs.StepGroups, &state{form: "group", groupName: f.Get("name"), groupID: f.Get("id"), keepGroup: true})
	case rest == "/admin/config-group":
		_, err := h.Orgs.SetConfigGroup(a.Actor, a.OrgID, f.Get("name"), f.Get("id"))
		h.after(w, r, a, err, "config-group-saved", orgs.StepGroups, &state{form: "cfggroup", cfgName: f.Get("name"), cfgID: f.Get("id"), keepCfg: true})
	case rest == "/admin/saml":
		in, echo := samlInput(f)
		ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
		defer cancel()
		_, err := h.Orgs.SetIdPContext(ctx, a.Actor, a.OrgID, in)
		h.after(w, r, a, err, "saml-saved", orgs.StepSAML, &state{form: "saml", idp: &echo})
	case rest == "/admin/scim-token":
		tok, err := h.Orgs.RotateSCIMToken(a.Actor, a.OrgID)
		if err != nil {
			h.after(w, r, a, err, "", orgs.StepSCIM, &state{form: "step." + orgs.StepSCIM, rowError: true})
			return
		}
		// Through a flash: the token must never appear in a URL, a
		// history entry or a log line, and a reload must not rotate it
		// again.
		h.redirectFlash(w, r, a, orgs.StepSCIM, &state{open: orgs.StepSCIM, newToken: tok.Token,
			notice: "New SCIM token generated. Any previous token no longer works."})
	case rest == "/admin/backup":
		_, err := h.Orgs.SetBackup(a.Actor, a.OrgID, f.Get("user"))
		h.after(w, r, a, err, "backup-saved", orgs.StepBackup, &state{form: "backup", field: "user"})
	case rest == "/admin/activate":
		_, err := h.Orgs.Activate(a.Actor, a.OrgID)
		h.after(w, r, a, err, "activated", "", &state{pageError: true})
	case rest == "/admin/deactivate":
		_, err := h.Orgs.Deactivate(a.Actor, a.OrgID)
		h.after(w, r, a, err, "deactivated", "", &state{pageError: true})
	default:
		step := strings.TrimPrefix(rest, "/admin/steps/")
		_, err := h.Orgs.SetStepDone(a.Actor, a.OrgID, step, f.Get("done") != "")
		// The page has ticks only on tickable steps; a refusal for another
		// step has no place there but the top.
		h.after(w, r, a, err, "step-saved", step, &state{form: "step." + step, rowError: true, pageError: !orgs.Tickable(step)})
	}
}

// samlInput turns the SAML step's form (one of its three variants) into
// the service's input, and the values to show again after an error.
func samlInput(f url.Values) (orgs.IdPInput, pages.IdPForm) {
	echo := pages.IdPForm{Mode: f.Get("mode")}
	switch echo.Mode {
	case "metadata_url":
		echo.MetadataURL = strings.TrimSpace(f.Get("metadata_url"))
		return orgs.IdPInput{MetadataURL: echo.MetadataURL}, echo
	case "metadata_xml":
		echo.MetadataXML = f.Get("metadata_xml")
		return orgs.IdPInput{MetadataXML: echo.MetadataXML}, echo
	}
	echo.Mode = "manual"
	echo.EntityID = strings.TrimSpace(f.Get("entity_id"))
	echo.SSOURL = strings.TrimSpace(f.Get("sso_url"))
	echo.Certificate = f.Get("certificates")
	in := orgs.IdPInput{EntityID: echo.EntityID, SSOURL: echo.SSOURL}
	if strings.TrimSpace(echo.Certificate) != "" {
		in.Certificates = []string{echo.Certificate}
	}
	return in, echo
}

// state is what one response adds to the page: a flash message, the
// section to expand, and a refused post's error and input.
type state struct {
	notice, open string

	// form keys the errors of the post ("group" → "group.name"); field,
	// when set, is the field every error of that form belongs to.
	form, field string
	rowError    bool // form is the whole key (a domain row, a tick)
	pageError   bool // shown at the top of the page

	newDomain          string
	groupName, groupID string
	keepGroup          bool
	cfgName, cfgID     string
	keepCfg            bool
	idp                *pages.IdPForm
	newToken           string

	err *orgs.Error
}

// after finishes a post: a redirect to the page with the notice code when
// it worked, with a flash holding the error and the input when it was
// refused.
func (h *Handler) after(w http.ResponseWriter, r *http.Request, a *Admin, err error, done, step string, st *state) {
	if err == nil {
		target := h.Prefix + "/admin/?done=" + url.QueryEscape(done)
		if step != "" {
			target += "&open=" + url.QueryEscape(step) + "#step-" + url.PathEscape(step)
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, target, http.StatusSeeOther)
		return
	}
	e, ok := orgs.AsError(err)
	if !ok {
		h.Fail(w, r, err)
		return
	}
	st.err, st.open = e, step
	// No #fragment: it would keep the browser from focusing the field
	// at fault (autofocus yields to a fragment's target).
	h.redirectFlash(w, r, a, "", st)
}

// redirectFlash keeps st for the page and redirects there.
func (h *Handler) redirectFlash(w http.ResponseWriter, r *http.Request, a *Admin, step string, st *state) {
	id, err := h.Flashes.Put(a.OrgID, a.Session, a.FlashKey, st)
	if err != nil {
		h.Fail(w, r, err)
		return
	}
	target := h.Prefix + "/admin/?r=" + url.QueryEscape(id)
	if step != "" {
		target += "#step-" + url.PathEscape(step)
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// Detach implements Flash: every string st keeps becomes its own copy,
// and an echoed input too large to keep is dropped (the error is still
// shown; the admin pastes again).
func (st *state) Detach() int {
	n := 0
	own := func(s *string, max int) {
		*s = Own(*s, max)
		n += len(*s)
	}
	for _, s := range []*string{&st.open, &st.form, &st.field, &st.newDomain, &st.groupName, &st.groupID, &st.cfgName, &st.cfgID} {
		own(s, MaxShortEcho)
	}
	st.notice = OwnMessage(st.notice)
	st.newToken = strings.Clone(st.newToken)
	n += len(st.notice) + len(st.newToken)
	if st.idp != nil {
		idp := *st.idp
		for _, s := range []*string{&idp.Mode, &idp.EntityID, &idp.SSOURL, &idp.MetadataURL} {
			own(s, MaxShortEcho)
		}
		own(&idp.MetadataXML, MaxEcho)
		own(&idp.Certificate, MaxEcho)
		st.idp = &idp
	}
	if st.err != nil {
		e := &orgs.Error{Status: st.err.Status, Field: Own(st.err.Field, MaxShortEcho), Message: OwnMessage(st.err.Message)}
		n += len(e.Field) + len(e.Message)
		for i, m := range st.err.Missing {
			if i == 16 {
				break
			}
			e.Missing = append(e.Missing, OwnMessage(m))
			n += len(e.Missing[i])
		}
		st.err = e
	}
	return n
}

// stateJSON is state as a flash keeps it (see Flashes).
type stateJSON struct {
	Notice    string         `json:"notice,omitempty"`
	Open      string         `json:"open,omitempty"`
	Form      string         `json:"form,omitempty"`
	Field     string         `json:"field,omitempty"`
	RowError  bool           `json:"rowError,omitempty"`
	PageError bool           `json:"pageError,omitempty"`
	NewDomain string         `json:"newDomain,omitempty"`
	GroupName string         `json:"groupName,omitempty"`
	GroupID   string         `json:"groupID,omitempty"`
	KeepGroup bool           `json:"keepGroup,omitempty"`
	CfgName   string         `json:"cfgName,omitempty"`
	CfgID     string         `json:"cfgID,omitempty"`
	KeepCfg   bool           `json:"keepCfg,omitempty"`
	IdP       *pages.IdPForm `json:"idp,omitempty"`
	NewToken  string         `json:"newToken,omitempty"`
	Err       *errorJSON     `json:"err,omitempty"`
}

// errorJSON is orgs.Error with its status, which its own JSON leaves out.
type errorJSON struct {
	Status  int      `json:"status"`
	Field   string   `json:"field,omitempty"`
	Message string   `json:"message"`
	Missing []string `json:"missing,omitempty"`
}

// MarshalJSON implements json.Marshaler for flashes.
func (st *state) MarshalJSON() ([]byte, error) {
	j := stateJSON{
		Notice: st.notice, Open: st.open, Form: st.form, Field: st.field, RowError: st.rowError, PageError: st.pageError,
		NewDomain: st.newDomain, GroupName: st.groupName, GroupID: st.groupID, KeepGroup: st.keepGroup,
		CfgName: st.cfgName, CfgID: st.cfgID, KeepCfg: st.keepCfg, IdP: st.idp, NewToken: st.newToken,
	}
	if e := st.err; e != nil {
		j.Err = &errorJSON{Status: e.Status, Field: e.Field, Message: e.Message, Missing: e.Missing}
	}
	return EncodeJSON(j)
}

// UnmarshalJSON implements json.Unmarshaler for flashes.
func (st *state) UnmarshalJSON(b []byte) error {
	var j stateJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*st = state{
		notice: j.Notice, open: j.Open, form: j.Form, field: j.Field, rowError: j.RowError, pageError: j.PageError,
		newDomain: j.NewDomain, groupName: j.GroupName, groupID: j.GroupID, keepGroup: j.KeepGroup,
		cfgName: j.CfgName, cfgID: j.CfgID, keepCfg: j.KeepCfg, idp: j.IdP, newToken: j.NewToken,
	}
	if e := j.Err; e != nil {
		st.err = &orgs.Error{Status: e.Status, Field: e.Field, Message: e.Message, Missing: e.Missing}
	}
	return nil
}

// errorKey is where the page shows a refused post's error.
func (st *state) errorKey() string {
	switch {
	case st.rowError:
		return st.form
	case st.field != "":
		return st.form + "." + st.field
	}
	return st.form + "." + st.err.Field
}

func (h *Handler) methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	h.Pages.Render(w, http.StatusMethodNotAllowed, "message", pages.Message{
		Prefix: h.Prefix, Title: "Method not allowed", Text: "This address does not accept that kind of request.",
	})
}

// timeFormat is how the page shows instants.
const timeFormat = "2 Jan 2006 15:04 MST"

func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeFormat)
}

// render builds the page from the organization's current state plus st.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, a *Admin, status int, st *state) {
	v, err := h.Orgs.GetOrg(a.OrgID)
	if err != nil {
		h.Fail(w, r, err)
		return
	}
	backup, err := h.Orgs.Backup(a.OrgID)
	if err != nil {
		h.Fail(w, r, err)
		return
	}
	p := &pages.Configurator{
		Prefix: h.Prefix, OrgID: v.ID, OrgName: v.Name, Me: a.Actor, CSRF: a.CSRF,
		Started: v.Started, Active: v.State == store.OrgActive,
		Total: len(v.Steps), Missing: v.Missing,
		Notice: st.notice, Err: map[string]string{},
		SP:          pages.SPValues{EntityID: v.SP.EntityID, ACSURL: v.SP.ACSURL, MetadataURL: v.SP.MetadataURL},
		SCIMBaseURL: h.Orgs.SCIMBaseURL(v.ID),
		NewDomain:   st.newDomain,
		GroupName:   v.AdminGroup.Name, GroupID: v.AdminGroup.ID,
		CfgGroupName: v.ConfigGroup.Name, CfgGroupID: v.ConfigGroup.ID,
		SCIMToken: v.SCIMToken, SCIMCreated: when(v.SCIMTokenCreated), SCIMLastUsed: when(v.SCIMTokenLastUsed),
		NewSCIMToken: st.newToken,
	}
	if !v.StateChangedAt.IsZero() {
		verb := "deactivated"
		if p.Active {
			verb = "activated"
		}
		p.StateChanged = verb + " " + when(v.StateChangedAt)
		if v.StateChangedBy != "" {
			p.StateChanged += " by " + v.StateChangedBy
		}
	}
	firstGrey := ""
	for i, s := range v.Steps {
		title := heading(s.Name, s.Title)
		p.Steps = append(p.Steps, pages.ConfigStep{
			Number: i + 1, Name: s.Name, Title: title, Done: s.Done, Ticked: s.Ticked, Tickable: s.Tickable, Todo: s.Todo,
		})
		if s.Done {
			p.Done++
		} else if firstGrey == "" {
			firstGrey = s.Name
		}
	}
	p.AllDone = p.Total > 0 && p.Done == p.Total
	// The page starts from the org's real state: an org its operator
	// configured, or that is live, shows its status and steps (and
	// Deactivate) even if no org admin ever pressed Start configuring.
	// The backup login is green from the org's creation (the owner), so
	// it alone does not count as configured.
	p.Started = v.Started || p.Active
	for _, s := range p.Steps {
		p.Started = p.Started || (s.Done && s.Name != orgs.StepBackup)
	}
	if p.Total > 0 {
		p.Percent = p.Done * 100 / p.Total
	}
	p.Open = firstGrey
	if orgs.StepTitle(st.open) != "" {
		p.Open = st.open
	}

	for _, d := range v.Domains {
		p.Domains = append(p.Domains, pages.DomainRow{
			Name: d.Name, Display: d.Unicode, Verified: d.Status == store.DomainVerified,
			TXTName: d.TXTRecord.Name, TXTValue: d.TXTRecord.Value,
			LastCheck: when(d.LastCheck), Result: d.LastResult,
		})
	}

	p.IdP = pages.IdPForm{
		Mode: "manual", EntityID: v.IdP.EntityID, SSOURL: v.IdP.SSOURL, MetadataURL: v.IdP.MetadataURL,
		Certificate: strings.Join(v.IdP.Certificates, ""), Saved: v.IdP.EntityID != "",
	}
	if st.idp != nil {
		p.IdP = *st.idp
	}
	for _, c := range v.IdP.CertificateInfo {
		p.Certs = append(p.Certs, pages.CertRow{Subject: c.Subject, NotAfter: when(c.NotAfter), SHA256: c.SHA256, Expired: c.Expired})
	}
	if st.keepGroup {
		p.GroupName, p.GroupID = st.groupName, st.groupID
	}
	if st.keepCfg {
		p.CfgGroupName, p.CfgGroupID = st.cfgName, st.cfgID
	}

	p.Backup = pages.BackupInfo{Current: backup.Email, Ready: backup.Ready, LastLogin: when(backup.LastLogin)}
	for _, u := range backup.Eligible {
		label := u.UserName
		if u.DisplayName != "" {
			label = u.DisplayName + " (" + u.UserName + ")"
		}
		p.Backup.Eligible = append(p.Backup.Eligible, pages.BackupOption{ID: u.ID, Label: label})
	}

	if st.err != nil {
		msg := st.err.Message
		if st.pageError {
			p.Focus = "page"
			p.Error = msg
			if len(st.err.Missing) > 0 {
				p.Error += " Still to do: " + strings.Join(st.err.Missing, ", ") + "."
			}
		} else {
			p.Focus = st.errorKey()
			p.Err[p.Focus] = capitalize(msg)
			// A refused Verify's message is the check's result: shown
			// once, next to the row, not also in its status cell.
			for i := range p.Domains {
				if p.Focus == "verify."+p.Domains[i].Name {
					p.Domains[i].Result = ""
				}
			}
			p.Error = "That did not go through: see the message below."
			for _, s := range p.Steps {
				if s.Name == p.Open {
					p.Error = fmt.Sprintf("That did not go through: see step %d, %s, below.", s.Number, s.Title)
				}
			}
		}
	}
	h.Pages.RenderConfigurator(w, status, p)
}

// capitalize starts a sentence: service messages are written to follow a
// field name ("name: must not be empty").
func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
