package caddymodule_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/crewjam/saml"

	"github.com/ssogate/ssogate/caddymodule"
	"github.com/ssogate/ssogate/caddymodule/samlsp"
	"github.com/ssogate/ssogate/examples/demo"
	"github.com/ssogate/ssogate/examples/demoidp"
	"github.com/ssogate/ssogate/store"
)

// runningStore is the store of the demo installation Caddy is running.
func runningStore(t testing.TB) *store.Store {
	t.Helper()
	app, err := caddy.ActiveContext().App("sso")
	if err != nil {
		t.Fatal(err)
	}
	st, err := app.(*caddymodule.App).Store()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// signInState is what an admitted sign-in changes in the store: whether
// its AuthnRequest is outstanding, whether its assertion is recorded
// against replay, the org's users (all fields, LastLogin included) and
// how many sessions the org has.
type signInState struct {
	RequestPending bool
	Replayed       bool
	Users          string
	Sessions       int
}

func stateOf(t *testing.T, st *store.Store, requestID, assertionID string) signInState {
	t.Helper()
	var s signInState
	if requestID != "" {
		_, err := st.PendingAuthnRequest(requestID)
		s.RequestPending = err == nil
	}
	if assertionID != "" {
		used, err := st.ReplayRecorded(samlsp.NewReplayCache(st, demo.OrgID).Key(assertionID))
		if err != nil {
			t.Fatal(err)
		}
		s.Replayed = used
	}
	users, _, err := st.ListUsers(demo.OrgID, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(users)
	if err != nil {
		t.Fatal(err)
	}
	s.Users = string(raw)
	if s.Sessions, err = st.CountOrgSessions(demo.OrgID); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestACSRefusalHasNoSideEffect is the invariant of SPEC §3.3 and issue 11
// §2 over every way the ACS refuses a sign-in: the AuthnRequest stays
// outstanding, the assertion is not recorded as used, no user is created
// or touched, and no session starts. Only the audit event tells. The
// control case shows that the same check sees an admitted sign-in's
// writes.
func TestACSRefusalHasNoSideEffect(t *testing.T) {
	ctx := context.Background()
	st := runningStore(t)
	orgURL := env.AdminURL + "/sso/orgs/" + demo.OrgID

	// Alice has signed in before, so her objectidentifier is on file.
	if p := respond(t, newBrowser(t), demo.AliceEmail, demoidp.RespondOptions{}); p.status != http.StatusSeeOther {
		t.Fatalf("first sign-in: %d\n%s", p.status, p.body)
	}
	alice, err := st.UserByUserName(demo.OrgID, demo.AliceEmail)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	var usedAssertionID string

	type tc struct {
		name  string
		email string // default Alice
		opts  demoidp.RespondOptions
		// unsolicited posts an IdP-initiated response instead.
		unsolicited bool
		// before runs after the response is made, before the snapshot;
		// its cleanup undoes it.
		before func(t *testing.T)
		want   int // status; default 4xx
		// says, when set, is in the refusal page: its reason.
		says string
	}
	ended := now.Add(-10 * time.Minute)
	cases := []tc{
		{name: "admitted (control)", want: http.StatusSeeOther},
		{name: "IdP session already ended", opts: demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
			a.AuthnStatements[0].SessionNotOnOrAfter = &ended
		}}},
		{name: "Success with a nested AuthnFailed", opts: demoidp.RespondOptions{MutateResponse: func(r *saml.Response) {
			r.Status.StatusCode.StatusCode = &saml.StatusCode{Value: saml.StatusAuthnFailed}
		}}},
		{name: "status not Success", opts: demoidp.RespondOptions{MutateResponse: func(r *saml.Response) {
			r.Status.StatusCode.Value = saml.StatusResponder
		}}},
		{name: "response issued 120 s in the future", opts: demoidp.RespondOptions{MutateResponse: func(r *saml.Response) {
			r.IssueInstant = now.Add(120 * time.Second)
		}}},
		{name: "assertion issued 120 s in the future", opts: demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
			a.IssueInstant = now.Add(120 * time.Second)
		}}},
		{name: "Conditions NotBefore 120 s ahead", opts: demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
			a.Conditions.NotBefore = now.Add(120 * time.Second)
		}}},
		{name: "Conditions NotOnOrAfter 120 s past", opts: demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
			a.Conditions.NotOnOrAfter = now.Add(-120 * time.Second)
		}}},
		{name: "confirmation NotBefore 120 s ahead", opts: demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
			a.Subject.SubjectConfirmations[0].SubjectConfirmationData.NotBefore = now.Add(120 * time.Second)
		}}},
		{name: "confirmation NotOnOrAfter 120 s past", opts: demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
			a.Subject.SubjectConfirmations[0].SubjectConfirmationData.NotOnOrAfter = now.Add(-120 * time.Second)
		}}},
		{name: "AuthnInstant 120 s ahead", opts: demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
			a.AuthnStatements[0].AuthnInstant = now.Add(120 * time.Second)
		}}},
		{name: "wrong audience", opts: demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
			a.Conditions.AudienceRestrictions[0].Audience.Value = "https://other-sp.example/saml"
		}}},
		{name: "unsigned", opts: demoidp.RespondOptions{Signing: demoidp.SignNothing}},
		{name: "email outside the verified domains", opts: demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
			demoidp.SetAttribute(a, "name", "alice@other-company.test")
			a.Subject.NameID.Value = "alice@other-company.test"
		}}},
		{name: "objectidentifier differs from the one on file", opts: demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
			demoidp.SetAttribute(a, demoidp.AttrObjectID, "someone-else")
		}}},
		{name: "not in the admin group", email: demo.BobEmail},
		{name: "user deactivated", before: func(t *testing.T) {
			setActive(t, st, alice.ID, false)
			t.Cleanup(func() { setActive(t, st, alice.ID, true) })
		}},
		{name: "org inactive", before: func(t *testing.T) {
			if _, err := env.Admin(ctx, http.MethodPost, orgURL+"/deactivate", nil); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if _, err := env.Admin(ctx, http.MethodPost, orgURL+"/activate", nil); err != nil {
					t.Errorf("re-activating: %v", err)
				}
			})
		}},
		{name: "unsolicited", unsolicited: true},
		// The assertion ID of an admitted sign-in, in a fresh, validly
		// signed answer to a new request: only the replay cache refuses it.
		{name: "assertion ID already used", opts: demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
			a.ID = usedAssertionID
		}}},
	}
	// Issue 10 review: sign-ins are held to the org's limits (scim_limits)
	// as SCIM is, before anything is written.
	newcomer := func(a *saml.Assertion) {
		demoidp.SetAttribute(a, "name", "newcomer@"+demo.Domain)
		demoidp.SetAttribute(a, demoidp.AttrObjectID, "newcomer-oid")
		a.Subject.NameID.Value = "newcomer@" + demo.Domain
	}
	manyGroups := []string{demo.AdminGroupName}
	for i := range 1000 {
		manyGroups = append(manyGroups, fmt.Sprint("group-", i))
	}
	limit := func(t *testing.T, limits map[string]any) {
		t.Helper()
		reloadWithSSO(t, map[string]any{"scim_limits": limits})
	}
	cases = append(cases,
		tc{name: "display name over max_string_length", says: "display name of 5000 bytes", opts: demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
			demoidp.SetAttribute(a, demoidp.AttrDisplayName, strings.Repeat("A", 5000))
		}}},
		tc{name: "family name over max_string_length", says: "family name of 1025 bytes", opts: demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
			demoidp.SetAttribute(a, demoidp.AttrLastName, strings.Repeat("A", 1025))
		}}},
		tc{name: "NameID over max_string_length", says: "NameID of 2000 bytes", opts: demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
			a.Subject.NameID.Value = strings.Repeat("n", 2000)
		}}},
		tc{name: "1,001 groups", says: "lists 1001 groups", opts: demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
			demoidp.SetAttribute(a, demoidp.AttrGroups, manyGroups...)
		}}},
		tc{name: "a group name over 1 KiB", says: "group name of 1025 bytes", opts: demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
			demoidp.SetAttribute(a, demoidp.AttrGroups, demo.AdminGroupName, strings.Repeat("g", 1025))
		}}},
		tc{name: "group names over 64 KiB in all", says: "take 100014 bytes", opts: demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
			groups := []string{demo.AdminGroupName}
			for i := range 100 {
				groups = append(groups, fmt.Sprintf("%03d", i)+strings.Repeat("g", 997))
			}
			demoidp.SetAttribute(a, demoidp.AttrGroups, groups...)
		}}},
		tc{name: "new user over max_users", says: "number of accounts", opts: demoidp.RespondOptions{Mutate: newcomer}, before: func(t *testing.T) {
			n, err := st.CountUsers(demo.OrgID)
			if err != nil {
				t.Fatal(err)
			}
			limit(t, map[string]any{"max_users": n})
		}},
		tc{name: "new user over max_stored_bytes", says: "used all the storage", opts: demoidp.RespondOptions{Mutate: newcomer}, before: func(t *testing.T) {
			n, err := st.StoredBytes(demo.OrgID)
			if err != nil {
				t.Fatal(err)
			}
			limit(t, map[string]any{"max_stored_bytes": n + 64})
		}},
	)
	// The sign-in attempts entry each refusal's reference code finds: the
	// troubleshooting table's reason (samlsp.ReasonByCode).
	reasons := map[string]string{
		"IdP session already ended":                     "session-ended",
		"Success with a nested AuthnFailed":             "idp-status",
		"status not Success":                            "idp-status",
		"response issued 120 s in the future":           "not-yet-valid",
		"assertion issued 120 s in the future":          "not-yet-valid",
		"Conditions NotBefore 120 s ahead":              "not-yet-valid",
		"Conditions NotOnOrAfter 120 s past":            "expired",
		"confirmation NotBefore 120 s ahead":            "not-yet-valid",
		"confirmation NotOnOrAfter 120 s past":          "expired",
		"AuthnInstant 120 s ahead":                      "not-yet-valid",
		"wrong audience":                                "audience",
		"unsigned":                                      "signature",
		"email outside the verified domains":            "domain",
		"objectidentifier differs from the one on file": "identity-mismatch",
		"not in the admin group":                        "not-in-group",
		"user deactivated":                              "deactivated",
		"org inactive":                                  "org-inactive",
		"unsolicited":                                   "unsolicited",
		"assertion ID already used":                     "replayed",
		"display name over max_string_length":           "too-large-values",
		"family name over max_string_length":            "too-large-values",
		"NameID over max_string_length":                 "too-large-values",
		"1,001 groups":                                  "too-large-values",
		"a group name over 1 KiB":                       "too-large-values",
		"group names over 64 KiB in all":                "too-large-values",
		"new user over max_users":                       "org-full",
		"new user over max_stored_bytes":                "org-full",
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			email := c.email
			if email == "" {
				email = demo.AliceEmail
			}
			var requestID, assertionID string
			mutate := c.opts.Mutate
			c.opts.Mutate = func(a *saml.Assertion) {
				requestID = a.Subject.SubjectConfirmations[0].SubjectConfirmationData.InResponseTo
				if mutate != nil {
					mutate(a)
				}
				assertionID = a.ID
			}
			b := newBrowser(t)
			var acs string
			var form map[string][]string
			var err error
			if c.unsolicited {
				b.startLogin(email, "") // a request of its own does not help
				acs, form, err = env.IdP.UnsolicitedWith(demo.OrgID, email, c.opts)
			} else {
				acs, form, err = env.IdP.RespondWith(b.startLogin(email, ""), email, c.opts)
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.before != nil {
				c.before(t)
			}
			before := stateOf(t, st, requestID, assertionID)
			p := b.post(acs, form)
			after := stateOf(t, st, requestID, assertionID)

			if c.want != 0 {
				if p.status != c.want {
					t.Fatalf("want %d, got %d\n%s", c.want, p.status, p.body)
				}
				if reflect.DeepEqual(before, after) || after.RequestPending || !after.Replayed || after.Sessions != before.Sessions+1 {
					t.Fatalf("the check does not see an admitted sign-in's writes: before %+v, after %+v", before, after)
				}
				usedAssertionID = assertionID
				return
			}
			if p.status < 400 || p.status >= 500 {
				t.Fatalf("want a 4xx refusal page, got %d %q\n%.2000s", p.status, p.location, p.body)
			}
			if !strings.Contains(p.body, c.says) {
				t.Errorf("the refusal page does not say %q:\n%.2000s", c.says, p.body)
			}
			if before.RequestPending != after.RequestPending {
				t.Errorf("the refusal consumed the AuthnRequest")
			}
			if before.Replayed != after.Replayed {
				t.Errorf("the refusal recorded the assertion as used")
			}
			if before.Users != after.Users {
				t.Errorf("the refusal changed the users:\nbefore %s\nafter  %s", before.Users, after.Users)
			}
			if before.Sessions != after.Sessions {
				t.Errorf("the refusal changed the number of sessions from %d to %d", before.Sessions, after.Sessions)
			}
			assertSignedOut(t, b)
			checkAttemptRecorded(t, st, p.body, reasons[c.name])
		})
	}
}

// checkAttemptRecorded: a refusal page shows a reference code, and that
// code finds the org's sign-in attempt with the wanted reason, its fix,
// and the shape of what arrived.
func checkAttemptRecorded(t *testing.T, st *store.Store, body, wantReason string) *store.SignInAttempt {
	t.Helper()
	m := refPattern.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("the refusal page shows no reference code:\n%.2000s", body)
	}
	got, err := st.ListSignInAttempts(demo.OrgID, m[1])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("reference code %s finds %d attempts", m[1], len(got))
	}
	a := got[0]
	if a.Outcome != "refused" || a.Reason != wantReason || a.Problem == "" || a.Fix == "" || a.Detail == "" {
		t.Fatalf("attempt %s: outcome %q reason %q (want %q), problem %q, fix %q, detail %q", a.Ref, a.Outcome, a.Reason, wantReason, a.Problem, a.Fix, a.Detail)
	}
	if a.Shape == nil || a.Shape.Issuer == "" || a.Shape.Destination == "" {
		t.Fatalf("attempt %s does not say what arrived: %+v", a.Ref, a.Shape)
	}
	return a
}

var refPattern = regexp.MustCompile(`data-ref="([2-9A-Z]{8})"`)

func setActive(t *testing.T, st *store.Store, userID string, active bool) {
	t.Helper()
	if _, err := st.UpdateUser(demo.OrgID, userID, func(u *store.User) error {
		u.Active = active
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestACSConcurrentPostsAdmitOne: the same response posted several times
// at once, from the browser that asked for it, signs in exactly once:
// the AuthnRequest and the assertion are consumed in one transaction,
// after every check, so the losers are refused without writing anything.
func TestACSConcurrentPostsAdmitOne(t *testing.T) {
	st := runningStore(t)
	b := newBrowser(t)
	var requestID, assertionID string
	acs, form, err := env.IdP.RespondWith(b.startLogin(demo.AliceEmail, ""), demo.AliceEmail, demoidp.RespondOptions{Mutate: func(a *saml.Assertion) {
		requestID = a.Subject.SubjectConfirmations[0].SubjectConfirmationData.InResponseTo
		assertionID = a.ID
	}})
	if err != nil {
		t.Fatal(err)
	}
	before := stateOf(t, st, requestID, assertionID)
	const n = 6
	statuses := make(chan int, n)
	body := form.Encode()
	for range n {
		go func() {
			req, _ := http.NewRequest(http.MethodPost, acs, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := b.client.Do(req)
			if err != nil {
				statuses <- 0
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	admitted := 0
	for range n {
		switch s := <-statuses; {
		case s == http.StatusSeeOther:
			admitted++
		case s < 400 || s >= 500:
			t.Errorf("a concurrent post got %d, want 303 or a 4xx refusal", s)
		}
	}
	after := stateOf(t, st, requestID, assertionID)
	if admitted != 1 || after.RequestPending || !after.Replayed || after.Sessions != before.Sessions+1 {
		t.Fatalf("%d of %d posts admitted; sessions %d -> %d, request still pending %v, assertion recorded %v",
			admitted, n, before.Sessions, after.Sessions, after.RequestPending, after.Replayed)
	}
}
