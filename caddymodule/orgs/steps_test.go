package orgs

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ssogate/ssogate/store"
)

// TestStepRules applies the rules of SPEC §6 to organizations that differ
// from a complete one in one respect each, and checks which steps are
// grey.
func TestStepRules(t *testing.T) {
	now := time.Now()
	current := newCertPEM(t, ecKey(t), now.Add(-time.Hour), now.Add(24*time.Hour))
	expired := newCertPEM(t, ecKey(t), now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	verified := &store.Domain{Name: "acme.com", Status: store.DomainVerified}
	pending := &store.Domain{Name: "acme.net", Status: store.DomainPending}
	eligible := &store.User{ID: "u1", UserName: "owner@acme.com", Source: store.SourceLocal, Active: true, PasswordHash: "h", LastLogin: now}

	complete := func() (*store.Org, stepFacts) {
		o := &store.Org{
			ID:            "acme",
			Steps:         map[string]bool{StepRegister: true, StepSAML: true, StepSCIM: true, StepUsers: true},
			IdP:           store.IdPSettings{EntityID: "urn:idp", SSOURL: "https://idp.example/sso", Certificates: []string{current}},
			AdminGroup:    store.GroupMapping{Name: "Admins", ID: "g1"},
			BackupLogin:   "u1",
			SCIMTokenHash: []byte("hash"),
		}
		u := *eligible
		return o, stepFacts{domains: []*store.Domain{verified}, backup: &u}
	}
	cases := []struct {
		name   string
		change func(o *store.Org, f *stepFacts)
		grey   []string
		todo   string // part of the first grey step's todo
	}{
		{"complete", func(*store.Org, *stepFacts) {}, nil, ""},
		{"no domain", func(o *store.Org, f *stepFacts) { f.domains = nil }, []string{StepDomains}, "Add your organization's email domain"},
		{"a pending domain beside a verified one", func(o *store.Org, f *stepFacts) { f.domains = append(f.domains, pending) }, []string{StepDomains}, "Verify acme.net"},
		{"register not ticked", func(o *store.Org, f *stepFacts) { delete(o.Steps, StepRegister) }, []string{StepRegister}, "Mark as done"},
		{"no group ID", func(o *store.Org, f *stepFacts) { o.AdminGroup.ID = "" }, []string{StepGroups}, "name and the ID"},
		{"no group name", func(o *store.Org, f *stepFacts) { o.AdminGroup.Name = "" }, []string{StepGroups}, "name and the ID"},
		{"SAML saved, not ticked", func(o *store.Org, f *stepFacts) { delete(o.Steps, StepSAML) }, []string{StepSAML}, "Mark as done"},
		{"SAML ticked, nothing saved", func(o *store.Org, f *stepFacts) { o.IdP = store.IdPSettings{} }, []string{StepSAML}, "the IdP entity ID, the SSO URL, a signing certificate"},
		{"SAML without SSO URL", func(o *store.Org, f *stepFacts) { o.IdP.SSOURL = "" }, []string{StepSAML}, "the SSO URL"},
		{"SAML with only expired certificates", func(o *store.Org, f *stepFacts) { o.IdP.Certificates = []string{expired} }, []string{StepSAML}, "expired"},
		{"SAML with an expired and a current certificate", func(o *store.Org, f *stepFacts) { o.IdP.Certificates = []string{expired, current} }, nil, ""},
		{"SCIM ticked, no token", func(o *store.Org, f *stepFacts) { o.SCIMTokenHash = nil }, []string{StepSCIM}, "Generate a SCIM token"},
		{"SCIM token, not ticked", func(o *store.Org, f *stepFacts) { delete(o.Steps, StepSCIM) }, []string{StepSCIM}, "Mark as done"},
		{"users not ticked", func(o *store.Org, f *stepFacts) { o.Steps[StepUsers] = false }, []string{StepUsers}, "Mark as done"},
		{"no backup login", func(o *store.Org, f *stepFacts) { o.BackupLogin, f.backup = "", nil }, []string{StepBackup}, "Choose the backup login"},
		{"backup account gone", func(o *store.Org, f *stepFacts) { f.backup = nil }, []string{StepBackup}, "Choose the backup login"},
		{"backup never signed in", func(o *store.Org, f *stepFacts) { f.backup.LastLogin = time.Time{} }, []string{StepBackup}, "never signed in"},
		{"backup without password", func(o *store.Org, f *stepFacts) { f.backup.PasswordHash = "" }, []string{StepBackup}, "not set a password"},
		{"backup deactivated", func(o *store.Org, f *stepFacts) { f.backup.Active = false }, []string{StepBackup}, "deactivated"},
		{"backup not a local account", func(o *store.Org, f *stepFacts) { f.backup.Source = store.SourceSCIM }, []string{StepBackup}, "not a local account"},
		{"a tick on a step that has none is ignored", func(o *store.Org, f *stepFacts) { o.Steps[StepGroups] = true; o.AdminGroup = store.GroupMapping{} }, []string{StepGroups}, ""},
		{"nothing at all", func(o *store.Org, f *stepFacts) { *o = store.Org{ID: "acme"}; *f = stepFacts{} },
			[]string{StepDomains, StepRegister, StepGroups, StepSAML, StepSCIM, StepUsers, StepBackup}, "Add your organization's email domain"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, f := complete()
			c.change(o, &f)
			steps := stepStatuses(o, f, now)
			if names := stepNames(steps); !slices.Equal(names, Steps()) {
				t.Fatalf("steps = %v, want %v", names, Steps())
			}
			var grey []string
			for _, st := range steps {
				if st.Tickable != Tickable(st.Name) || st.Title != StepTitle(st.Name) || st.Title == "" {
					t.Errorf("step %+v", st)
				}
				if st.Done != (st.Todo == "") {
					t.Errorf("step %s: done %v with todo %q", st.Name, st.Done, st.Todo)
				}
				if st.Ticked && !st.Tickable {
					t.Errorf("step %s reports a tick it cannot have", st.Name)
				}
				if !st.Done {
					grey = append(grey, st.Name)
				}
			}
			if !slices.Equal(grey, c.grey) {
				t.Errorf("grey steps = %v, want %v", grey, c.grey)
			}
			if c.todo != "" {
				for _, st := range steps {
					if !st.Done {
						if !strings.Contains(st.Todo, c.todo) {
							t.Errorf("todo of %s = %q, want it to mention %q", st.Name, st.Todo, c.todo)
						}
						break
					}
				}
			}
			titles := greyTitles(steps)
			if len(titles) != len(c.grey) {
				t.Errorf("grey titles = %v", titles)
			}
		})
	}
}

func stepNames(steps []StepStatus) []string {
	var out []string
	for _, st := range steps {
		out = append(out, st.Name)
	}
	return out
}

// TestStepTicks: only the four tickable steps take a tick; anything else
// is refused with a 400 on "step" and changes nothing; ticks are audited
// once per change.
func TestStepTicks(t *testing.T) {
	e := newEnv(t)
	e.createOrg("acme")
	for _, step := range []string{StepDomains, StepGroups, StepBackup, "nope", "SAML", ""} {
		before := e.snapshot()
		_, err := e.svc.SetStepDone("tester", "acme", step, true)
		if ae, ok := AsError(err); !ok || ae.Status != http.StatusBadRequest || ae.Field != "step" {
			t.Errorf("ticking %q: %v", step, err)
		}
		if e.snapshot() != before {
			t.Errorf("a refused tick of %q changed the store", step)
		}
	}
	r := e.must(http.StatusBadRequest, "PUT", "/sso/orgs/acme/steps/domains", map[string]bool{"done": true})
	if o := r.object(t); o["field"] != "step" {
		t.Errorf("refusal = %v", o)
	}
	r = e.must(http.StatusBadRequest, "PUT", "/sso/orgs/acme/steps/register", map[string]any{})
	if o := r.object(t); o["field"] != "done" {
		t.Errorf("refusal without done = %v", o)
	}
	e.must(http.StatusBadRequest, "PUT", "/sso/orgs/acme/steps/register", map[string]any{"done": "yes"})
	e.must(http.StatusNotFound, "PUT", "/sso/orgs/nope/steps/register", map[string]bool{"done": true})

	step := func(org map[string]any, name string) map[string]any {
		t.Helper()
		for _, s := range org["steps"].([]any) {
			if m := s.(map[string]any); m["name"] == name {
				return m
			}
		}
		t.Fatalf("no step %s in %v", name, org["steps"])
		return nil
	}
	org := e.must(http.StatusOK, "PUT", "/sso/orgs/acme/steps/register", map[string]bool{"done": true}).object(t)
	if s := step(org, StepRegister); s["done"] != true || s["ticked"] != true || s["tickable"] != true || s["todo"] != nil {
		t.Errorf("register after tick = %v", s)
	}
	// Ticking SCIM without a token: ticked, still grey.
	org = e.must(http.StatusOK, "PUT", "/sso/orgs/acme/steps/scim", map[string]bool{"done": true}).object(t)
	if s := step(org, StepSCIM); s["done"] != false || s["ticked"] != true || !strings.Contains(s["todo"].(string), "SCIM token") {
		t.Errorf("scim ticked without token = %v", s)
	}
	e.must(http.StatusOK, "PUT", "/sso/orgs/acme/steps/register", map[string]bool{"done": true}) // no change
	org = e.must(http.StatusOK, "PUT", "/sso/orgs/acme/steps/register", map[string]bool{"done": false}).object(t)
	if s := step(org, StepRegister); s["done"] != false || s["ticked"] != false {
		t.Errorf("register after untick = %v", s)
	}
	if m := org["missing"].([]any); len(m) != 7 || m[0] != "Domains" || m[1] != "Register the app" {
		t.Errorf("missing = %v", m)
	}
	events, err := e.store.ListAudit("acme", 100)
	if err != nil {
		t.Fatal(err)
	}
	var ticks []string
	for _, ev := range events {
		if ev.Action == "step.set" {
			ticks = append(ticks, ev.Details["step"]+"="+ev.Details["done"])
		}
	}
	slices.Reverse(ticks)
	if want := []string{"register=true", "scim=true", "register=false"}; !slices.Equal(ticks, want) {
		t.Errorf("audited ticks = %v, want %v", ticks, want)
	}
}

// TestStartConfiguring: opening the configurator is recorded once, and
// designates the admin as the backup login only when the organization has
// none and the admin's account is eligible.
func TestStartConfiguring(t *testing.T) {
	e := newEnv(t)
	e.createOrg("acme")
	owner, err := e.store.UserByUserName("acme", "owner@acme.example.com")
	if err != nil {
		t.Fatal(err)
	}
	v, err := e.svc.GetOrg("acme")
	if err != nil || v.Started {
		t.Fatalf("new org: started %v, %v", v.Started, err)
	}
	link, err := e.svc.InviteLocalUser("owner@acme.example.com", "acme", "carol@acme.example.com", "admin", "")
	if err != nil {
		t.Fatal(err)
	}
	carol := e.signedInOnce("acme", "carol@acme.example.com")

	// The owner is the backup login already: opening the configurator
	// does not move it, even for an eligible admin.
	v, err = e.svc.StartConfiguring("carol@acme.example.com", "acme", carol.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Started || v.BackupLogin != owner.ID {
		t.Errorf("after start: started %v, backup %q (owner %q)", v.Started, v.BackupLogin, owner.ID)
	}
	again, err := e.svc.StartConfiguring("carol@acme.example.com", "acme", carol.ID)
	if err != nil || !again.Started {
		t.Fatalf("second start: %v", err)
	}
	o, _ := e.store.GetOrg("acme")
	first := o.ConfigStarted

	// Without a backup login (the owner's account was deleted), an
	// ineligible admin is not designated, an eligible one is.
	if err := e.store.DeleteUser("acme", owner.ID); err != nil {
		t.Fatal(err)
	}
	if v, err := e.svc.StartConfiguring("someone", "acme", "not-a-user"); err != nil || v.BackupLogin != owner.ID {
		t.Errorf("unknown user: backup %q, %v", v.BackupLogin, err)
	}
	if _, err := e.store.UpdateUser("acme", carol.ID, func(u *store.User) error { u.LastLogin = time.Time{}; return nil }); err != nil {
		t.Fatal(err)
	}
	if v, err := e.svc.StartConfiguring("carol@acme.example.com", "acme", carol.ID); err != nil || v.BackupLogin == carol.ID {
		t.Errorf("never-signed-in admin designated: %q, %v", v.BackupLogin, err)
	}
	e.signedInOnce("acme", "carol@acme.example.com")
	v, err = e.svc.StartConfiguring("carol@acme.example.com", "acme", link.UserID)
	if err != nil || v.BackupLogin != carol.ID {
		t.Fatalf("eligible admin: backup %q, %v", v.BackupLogin, err)
	}
	if st := v.Steps[len(v.Steps)-1]; st.Name != StepBackup || !st.Done {
		t.Errorf("backup step = %+v", st)
	}
	o, _ = e.store.GetOrg("acme")
	if !o.ConfigStarted.Equal(first) {
		t.Errorf("start time moved from %v to %v", first, o.ConfigStarted)
	}

	events, err := e.store.ListAudit("acme", 100)
	if err != nil {
		t.Fatal(err)
	}
	starts, designations := 0, 0
	for _, ev := range events {
		switch {
		case ev.Action == "configurator.start":
			starts++
		case ev.Action == "backup.set" && ev.Details["reason"] == "the admin who opened the configurator":
			designations++
			if ev.Details["to_id"] != carol.ID || ev.Actor != "carol@acme.example.com" {
				t.Errorf("designation event %+v", ev)
			}
		}
	}
	if starts != 1 || designations != 1 {
		t.Errorf("audited %d starts and %d designations, want 1 and 1", starts, designations)
	}
	if _, err := e.svc.StartConfiguring("x", "nope", ""); err == nil {
		t.Error("started configuring an unknown org")
	}
}
