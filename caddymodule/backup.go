package caddymodule

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/ssogate/ssogate/caddymodule/local"
	"github.com/ssogate/ssogate/caddymodule/pages"
	"github.com/ssogate/ssogate/store"
)

// Password sign-in ({prefix}/backup) and the one-time set-password links
// ({prefix}/invite/{token}) of local accounts (SPEC §2, §3.8).

// maxLocalForm caps the password forms' bodies.
const maxLocalForm = 16 << 10

// serveLocal routes the local-account endpoints under the prefix. It
// returns false for paths it does not serve, so serveOwn goes on.
func (g *Gateway) serveLocal(w http.ResponseWriter, r *http.Request, rest string) bool {
	switch {
	case rest == "/backup":
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			g.backupForm(w, r)
		case http.MethodPost:
			g.backupSignIn(w, r)
		default:
			g.methodNotAllowed(w, "GET, POST")
		}
	case strings.HasPrefix(rest, "/invite/") && !strings.Contains(rest[len("/invite/"):], "/"):
		token := rest[len("/invite/"):]
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			g.setPasswordForm(w, r, token)
		case http.MethodPost:
			g.setPassword(w, r, token)
		default:
			g.methodNotAllowed(w, "GET, POST")
		}
	default:
		return g.serveAdminUsers(w, r, rest)
	}
	return true
}

// localStates returns the gateway and local-account states.
func (g *Gateway) localStates() (*gatewayState, *localState, error) {
	st, err := g.state()
	if err != nil {
		return nil, nil, err
	}
	ls, err := g.app.localState()
	if err != nil {
		return nil, nil, err
	}
	return st, ls, nil
}

// preSessionCSRF returns the CSRF token of a form shown before sign-in,
// setting the random cookie it is bound to when the browser has none.
func (g *Gateway) preSessionCSRF(w http.ResponseWriter, r *http.Request, ls *localState) (string, error) {
	binding := g.cookie(r, preCSRFCookie)
	if len(binding) < 32 {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return "", fmt.Errorf("csrf cookie: %w", err)
		}
		binding = base64.RawURLEncoding.EncodeToString(b)
		g.setCookie(w, preCSRFCookie, binding, 0)
	}
	return ls.csrf.Token("pre:" + binding), nil
}

// checkPreSessionCSRF refuses a form post that another site made: the
// browser must say it is same-origin (or say nothing, like non-browser
// clients), and the form's token must match this browser's cookie. The
// cookie is SameSite=Strict, so a cross-site post does not even carry it.
func (g *Gateway) checkPreSessionCSRF(r *http.Request, ls *localState) bool {
	if ls.origin.Check(r) != nil {
		return false
	}
	binding := g.cookie(r, preCSRFCookie)
	return len(binding) >= 32 && ls.csrf.Valid("pre:"+binding, r.PostForm.Get("csrf"))
}

func (g *Gateway) csrfRefused(w http.ResponseWriter, retry string) {
	m := pages.Message{Prefix: g.Prefix, Title: "Please try again",
		Text: "The form could not be accepted: it was sent from another site, or it expired.",
		Hint: "Open the page again and resend the form from there.", RetryURL: retry}
	g.pages.Render(w, http.StatusForbidden, "message", m)
}

func (g *Gateway) backupForm(w http.ResponseWriter, r *http.Request) {
	_, ls, err := g.localStates()
	if err != nil {
		g.internalError(w, r, "opening state", err)
		return
	}
	token, err := g.preSessionCSRF(w, r, ls)
	if err != nil {
		g.internalError(w, r, "csrf token", err)
		return
	}
	q := r.URL.Query()
	g.pages.Render(w, http.StatusOK, "backup", pages.Backup{
		Prefix: g.Prefix, CSRF: token, Org: orgHint(q.Get("org")), ReturnTo: safeReturn(q.Get("return")),
	})
}

// orgHint keeps a value only if it could be an org ID.
func orgHint(s string) string {
	if len(s) < 2 || len(s) > 40 || strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
		return ""
	}
	return s
}

// preSessionForm reads a password form (sign-in, set password) and checks
// its pre-session CSRF token; false means the answer is sent. Any form
// that cannot be read gets the 400 page with text.
func (g *Gateway) preSessionForm(w http.ResponseWriter, r *http.Request, text string, retry bool, retryURL string) (*gatewayState, *localState, bool) {
	if _, ok := readForm(w, r, maxLocalForm); !ok {
		g.message(w, http.StatusBadRequest, "Bad request", text, "", retry)
		return nil, nil, false
	}
	st, ls, err := g.localStates()
	if err != nil {
		g.internalError(w, r, "opening state", err)
		return nil, nil, false
	}
	if !g.checkPreSessionCSRF(r, ls) {
		g.csrfRefused(w, retryURL)
		return nil, nil, false
	}
	return st, ls, true
}

func (g *Gateway) backupSignIn(w http.ResponseWriter, r *http.Request) {
	st, ls, ok := g.preSessionForm(w, r, "The sign-in form could not be read.", true, g.Prefix+"/backup")
	if !ok {
		return
	}
	form := pages.Backup{
		Prefix:   g.Prefix,
		Email:    strings.TrimSpace(r.PostForm.Get("email")),
		Org:      orgHint(r.PostForm.Get("org")),
		ReturnTo: safeReturn(r.PostForm.Get("return")),
	}
	var err error
	if form.CSRF, err = g.preSessionCSRF(w, r, ls); err != nil {
		g.internalError(w, r, "csrf token", err)
		return
	}
	if len(form.Email) > 254 {
		form.Email = ""
	}
	attempt := local.Attempt{
		Email: form.Email, Password: r.PostForm.Get("password"), OrgHint: form.Org, SourceIP: local.SourceKey(clientIP(r)),
		DeviceToken: g.cookie(r, deviceCookie),
	}
	res, err := ls.auth.Authenticate(r.Context(), attempt)
	if err != nil {
		g.internalError(w, r, "password sign-in", err)
		return
	}
	g.auditSignIn(st, r, res, res.TrustedDevice)

	switch res.Outcome {
	case local.OutcomeSuccess:
	case local.OutcomeLocked:
		wait := max(1, int(math.Ceil(res.RetryAfter.Seconds())))
		w.Header().Set("Retry-After", strconv.Itoa(wait))
		form.Error = "Too many failed sign-in attempts. Wait " + readableWait(res.RetryAfter) + " and try again."
		g.pages.Render(w, http.StatusTooManyRequests, "backup", form)
		return
	case local.OutcomeBusy, local.OutcomeOverloaded:
		g.passwordBusy(w, res.Outcome == local.OutcomeOverloaded)
		form.Error = "Too many sign-in attempts are being checked right now. Wait a few seconds and try again."
		g.pages.Render(w, busyStatus(res.Outcome == local.OutcomeOverloaded), "backup", form)
		return
	case local.OutcomeBadCredentials:
		form.Error = "The email address or password is not correct."
		g.pages.Render(w, http.StatusUnauthorized, "backup", form)
		return
	case local.OutcomeDisabled:
		form.Error = "This account is deactivated. Ask your organization's administrator."
		g.pages.Render(w, http.StatusForbidden, "backup", form)
		return
	case local.OutcomeForeignDomain:
		form.Error = "This address's domain belongs to another organization, so it cannot sign in with a password here."
		g.pages.Render(w, http.StatusForbidden, "backup", form)
		return
	case local.OutcomeUseSSO:
		form.Error = "Your organization signs in with single sign-on. Use Continue with SSO."
		form.UseSSO = true
		g.pages.Render(w, http.StatusForbidden, "backup", form)
		return
	case local.OutcomeSSOOnly:
		form.Error = "Your organization has turned on single sign-on: password sign-in is kept for its backup login account. Ask your organization's administrator."
		g.pages.Render(w, http.StatusForbidden, "backup", form)
		return
	default:
		g.internalError(w, r, "password sign-in", fmt.Errorf("unexpected outcome %q", res.Outcome))
		return
	}

	// A new session, never the old one's reference (no fixation), and
	// the old record goes so it cannot be replayed.
	if old, err := st.sessions.Load(r); err == nil {
		_ = st.store.DeleteSession(old.ID)
	}
	if _, err := st.sessions.Start(w, r, store.Session{OrgID: res.Org.ID, UserID: res.User.ID, AuthMethod: res.Method}, time.Time{}); err != nil {
		g.internalError(w, r, "starting session", err)
		return
	}
	g.trustDevice(w, r, ls, res.User)
	g.logger.Info("signed in", zap.String("org", res.Org.ID), zap.String("user_id", res.User.ID), zap.String("method", res.Method))
	ret := form.ReturnTo
	if ret == "" {
		ret = "/"
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, ret, http.StatusSeeOther)
}

// passwordBusy sets Retry-After on the answer to a password attempt that
// was refused unchecked: its source had too many in flight (429), or the
// hasher's queue was full (503, a longer wait).
func (g *Gateway) passwordBusy(w http.ResponseWriter, overloaded bool) {
	retry := "1"
	if overloaded {
		retry = "5"
	}
	w.Header().Set("Retry-After", retry)
	w.Header().Set("Cache-Control", "no-store")
}

func busyStatus(overloaded bool) int {
	if overloaded {
		return http.StatusServiceUnavailable
	}
	return http.StatusTooManyRequests
}

// trustDevice gives the browser a trusted-device cookie for the account
// (see local.Devices): it just proved it knows the account's password or
// holds its set-password link. u is the account as stored after that.
func (g *Gateway) trustDevice(w http.ResponseWriter, r *http.Request, ls *localState, u *store.User) {
	tok, err := ls.devices.Issue(u)
	if err != nil {
		g.logger.Warn("issuing device cookie", zap.Error(err))
		return
	}
	g.setCookie(w, deviceCookie, tok, deviceCookieAge)
}

// auditSignIn records a password sign-in attempt. Attempts refused by a
// lock are recorded once per lock (the first refusal); the rest of a flood
// would only fill the trail. The password is never recorded.
func (g *Gateway) auditSignIn(st *gatewayState, r *http.Request, res local.Result, trusted bool) {
	g.observePasswordSignIn(st, res) // metrics.go: every attempt, throttled ones included
	if res.Outcome == local.OutcomeLocked && !res.FirstRefusal {
		return
	}
	orgID, action := "", "login.password"
	if res.Org != nil {
		orgID = res.Org.ID
		if res.User != nil && res.User.ID == res.Org.BackupLogin {
			action = "login.backup"
		}
	}
	actor := res.Email
	if actor == "" {
		actor = "anonymous"
	}
	details := map[string]string{}
	if trusted {
		details["device"] = "trusted"
	}
	outcome := "denied"
	switch res.Outcome {
	case local.OutcomeSuccess:
		outcome = "success"
		details["method"] = res.Method
	case local.OutcomeBadCredentials:
		outcome = "failure"
		details["reason"] = "wrong email or password"
	case local.OutcomeLocked:
		details["reason"] = "throttled (" + res.LockScope + " locked)"
		details["retry_after"] = res.RetryAfter.Round(time.Second).String()
	default:
		details["reason"] = string(res.Outcome)
	}
	g.audit(st, r, orgID, actor, action, outcome, details)
	for _, l := range res.NewLocks {
		g.audit(st, r, orgID, actor, "login.lock", "denied", map[string]string{
			"scope": l.Scope, "duration": l.Duration.String(),
		})
		g.logger.Warn("password sign-in locked", zap.String("org", orgID), zap.String("scope", l.Scope),
			zap.Duration("duration", l.Duration), zap.String("remote_ip", clientIP(r)))
	}
}

// readableWait says how long a lock lasts, rounded up.
func readableWait(d time.Duration) string {
	switch s := int(math.Ceil(d.Seconds())); {
	case s <= 1:
		return "a second"
	case s < 90:
		return strconv.Itoa(s) + " seconds"
	default:
		return strconv.Itoa(int(math.Ceil(d.Minutes()))) + " minutes"
	}
}

// linkTarget is a pending set-password link with its account.
type linkTarget struct {
	inv  *store.Invitation
	user *store.User
	org  *store.Org
}

// lookupLink finds the pending link of token; nil if there is none (a
// malformed, unknown, used or expired token, or its account is gone).
func (g *Gateway) lookupLink(st *gatewayState, token string) (*linkTarget, error) {
	if !local.LooksLikeLinkToken(token) {
		return nil, nil
	}
	inv, err := st.store.GetInvitation(local.HashLinkToken(token))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	u, err := st.store.GetUser(inv.OrgID, inv.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	o, err := st.store.GetOrg(inv.OrgID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if u.Source != store.SourceLocal {
		return nil, nil
	}
	return &linkTarget{inv: inv, user: u, org: o}, nil
}

func (g *Gateway) linkGone(w http.ResponseWriter) {
	g.pages.Render(w, http.StatusGone, "message", pages.Message{
		Prefix: g.Prefix, Title: "This link no longer works",
		Text: "Set-password links work once, for a limited time. This one was already used, has expired, or was replaced by a newer one.",
		Hint: "Ask your organization's administrator (or the gateway's operator) for a new link.",
	})
}

func (g *Gateway) setPasswordForm(w http.ResponseWriter, r *http.Request, token string) {
	st, ls, err := g.localStates()
	if err != nil {
		g.internalError(w, r, "opening state", err)
		return
	}
	// Looking does not use the link: mail scanners that open links must
	// not burn it.
	lt, err := g.lookupLink(st, token)
	if err != nil {
		g.internalError(w, r, "looking up link", err)
		return
	}
	if lt == nil {
		g.linkGone(w)
		return
	}
	csrf, err := g.preSessionCSRF(w, r, ls)
	if err != nil {
		g.internalError(w, r, "csrf token", err)
		return
	}
	g.pages.Render(w, http.StatusOK, "setpassword", g.setPasswordPage(lt, token, csrf))
}

func (g *Gateway) setPasswordPage(lt *linkTarget, token, csrf string) pages.SetPassword {
	return pages.SetPassword{
		Prefix: g.Prefix, Token: token, Email: lt.user.UserName, OrgName: lt.org.Name, CSRF: csrf,
		Expires: lt.inv.ExpiresAt.UTC().Format("2 Jan 2006 15:04 MST"), MinLength: local.MinPasswordLength,
		SSOOnly: lt.org.State == store.OrgActive && lt.user.ID != lt.org.BackupLogin,
	}
}

func (g *Gateway) setPassword(w http.ResponseWriter, r *http.Request, token string) {
	st, ls, ok := g.preSessionForm(w, r, "The form could not be read.", false, g.Prefix+"/invite/"+token)
	if !ok {
		return
	}
	lt, err := g.lookupLink(st, token)
	if err != nil {
		g.internalError(w, r, "looking up link", err)
		return
	}
	if lt == nil {
		g.audit(st, r, "", "anonymous", "local.password.set", "denied", map[string]string{"reason": "unknown, used or expired link"})
		g.linkGone(w)
		return
	}
	csrf, err := g.preSessionCSRF(w, r, ls)
	if err != nil {
		g.internalError(w, r, "csrf token", err)
		return
	}
	page := g.setPasswordPage(lt, token, csrf)
	pw := r.PostForm.Get("password")
	if pw != r.PostForm.Get("confirm") {
		page.Error = "The two passwords differ. Type the same password twice."
		g.pages.Render(w, http.StatusBadRequest, "setpassword", page)
		return
	}
	if err := local.CheckPassword(pw, local.PasswordContext{Email: lt.user.UserName, OrgID: lt.org.ID, OrgName: lt.org.Name}); err != nil {
		page.Error = err.Error()
		g.pages.Render(w, http.StatusBadRequest, "setpassword", page)
		return
	}
	// The link is unguessable, so there is nothing to throttle, but each
	// post costs a hash: the same bounds as sign-in keep one client from
	// queueing them without end.
	release, ok := ls.inFlight.Acquire(local.SourceKey(clientIP(r)))
	if !ok {
		g.passwordBusy(w, false)
		page.Error = "Too many requests are being handled right now. Wait a few seconds and try again."
		g.pages.Render(w, http.StatusTooManyRequests, "setpassword", page)
		return
	}
	hash, err := ls.hasher.Hash(r.Context(), pw)
	release()
	if errors.Is(err, local.ErrBusy) {
		g.passwordBusy(w, true)
		page.Error = "Too many requests are being handled right now. Wait a few seconds and try again."
		g.pages.Render(w, http.StatusServiceUnavailable, "setpassword", page)
		return
	}
	if err != nil {
		g.internalError(w, r, "hashing password", err)
		return
	}
	inv, u, err := st.store.RedeemInvitation(lt.inv.TokenHash, hash)
	if errors.Is(err, store.ErrNotFound) {
		// Used by a concurrent request, or expired while the hash ran.
		g.linkGone(w)
		return
	}
	if err != nil {
		g.internalError(w, r, "storing password", err)
		return
	}
	// A new password ends every session the account had.
	n, err := st.store.DeleteUserSessions(u.OrgID, u.ID)
	if err != nil {
		g.logger.Error("ending sessions after a password change", zap.String("org", u.OrgID), zap.Error(err))
	}
	g.audit(st, r, u.OrgID, u.UserName, "local.password.set", "success", map[string]string{
		"purpose": inv.Purpose, "sessions_ended": strconv.Itoa(n),
	})
	g.trustDevice(w, r, ls, u)
	done := pages.Backup{
		Prefix: g.Prefix, CSRF: csrf, Org: u.OrgID, Email: u.UserName,
		Notice: "Your password is set. Sign in with it now.",
	}
	if page.SSOOnly {
		// Inviting "sign in with it now" would be followed by a refusal.
		done.Notice = "Your password is set. Your organization signs in with single sign-on, so use Continue with SSO; the password works only if you become its backup login account."
		done.UseSSO = true
	}
	g.pages.Render(w, http.StatusOK, "backup", done)
}
