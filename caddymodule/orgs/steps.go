package orgs

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/ssogate/ssogate/store"
)

// Step names of the configurator (SPEC §6), in the order it shows them.
// They are also the keys of the "done in the IdP" ticks in store.Org.Steps.
const (
	StepDomains  = "domains"  // green: at least one domain, and every listed domain verified
	StepRegister = "register" // green: the admin ticked "done in the IdP"
	StepGroups   = "groups"   // green: admin group name and ID saved
	StepSAML     = "saml"     // green: valid IdP settings saved (entity ID, SSO URL, an unexpired certificate) and ticked
	StepSCIM     = "scim"     // green: a SCIM token exists and ticked
	StepUsers    = "users"    // green: ticked
	StepBackup   = "backup"   // green: the backup login is an eligible account
)

// stepOrder is the configurator's steps with their titles, in order. An
// array value never handed out, so nothing can change it.
var stepOrder = [...]struct{ name, title string }{
	{StepDomains, "Domains"},
	{StepRegister, "Register the app"},
	{StepGroups, "Group mapping"},
	{StepSAML, "SAML"},
	{StepSCIM, "SCIM"},
	{StepUsers, "Users"},
	{StepBackup, "Backup login"},
}

// Steps returns the configurator's step names in order.
func Steps() []string {
	out := make([]string, len(stepOrder))
	for i, st := range stepOrder {
		out[i] = st.name
	}
	return out
}

// StepTitle returns the title the configurator shows for a step, or "" for
// an unknown step.
func StepTitle(step string) string {
	for _, st := range stepOrder {
		if st.name == step {
			return st.title
		}
	}
	return ""
}

// Tickable reports whether a step needs the admin's "done in the IdP" tick:
// the gateway cannot see what was configured at the IdP, so the admin
// vouches for it.
func Tickable(step string) bool {
	switch step {
	case StepRegister, StepSAML, StepSCIM, StepUsers:
		return true
	}
	return false
}

// StepStatus is one step of the configurator: green (Done) or grey, and
// why it is grey.
type StepStatus struct {
	Name  string `json:"name"`
	Title string `json:"title"`
	// Done: the step is green.
	Done bool `json:"done"`
	// Ticked: the admin ticked "done in the IdP" (tickable steps only).
	Ticked   bool `json:"ticked"`
	Tickable bool `json:"tickable"`
	// Todo says, in one sentence, what would make a grey step green.
	Todo string `json:"todo,omitempty"`
}

// stepFacts is what the step rules need besides the organization record.
// It is read outside the org's transaction: domains and users are
// separate records.
type stepFacts struct {
	domains []*store.Domain
	// backup is the designated backup login's account; nil when none is
	// designated or the account is gone.
	backup *store.User
}

// loadStepFacts reads the records the step rules look at.
func (s *Service) loadStepFacts(o *store.Org) (stepFacts, error) {
	var f stepFacts
	var err error
	if f.domains, err = s.store.ListDomains(o.ID); err != nil {
		return f, orgErr(o.ID, err, "listing domains of")
	}
	if o.BackupLogin != "" {
		u, err := s.store.GetUser(o.ID, o.BackupLogin)
		switch {
		case err == nil:
			f.backup = u
		case !errors.Is(err, store.ErrNotFound):
			return f, orgErr(o.ID, err, "reading the backup login of")
		}
	}
	return f, nil
}

// stepStatuses applies the rules of SPEC §6 to an organization.
func stepStatuses(o *store.Org, f stepFacts, now time.Time) []StepStatus {
	out := make([]StepStatus, 0, len(stepOrder))
	for _, st := range stepOrder {
		ss := StepStatus{Name: st.name, Title: st.title, Tickable: Tickable(st.name)}
		ss.Ticked = ss.Tickable && o.Steps[st.name] // a stray flag on another step means nothing
		ss.Todo = stepTodo(st.name, o, f, now)
		if ss.Todo == "" && ss.Tickable && !ss.Ticked {
			// Names the box as the configurator labels it (the vendor
			// guide's wording), so the page shows this text as it is.
			ss.Todo = `When this is done in your identity provider, press "Mark as done".`
		}
		ss.Done = ss.Todo == ""
		out = append(out, ss)
	}
	return out
}

// stepTodo checks a step's own conditions (not its tick) and returns what
// is missing, or "".
func stepTodo(step string, o *store.Org, f stepFacts, now time.Time) string {
	switch step {
	case StepDomains:
		if len(f.domains) == 0 {
			return "Add your organization's email domain and verify it with a DNS TXT record."
		}
		var pending []string
		for _, d := range f.domains {
			if d.Status != store.DomainVerified {
				pending = append(pending, d.Name)
			}
		}
		if len(pending) > 0 {
			return fmt.Sprintf("Verify %s (publish the TXT record, then Verify), or remove what you do not use.", strings.Join(pending, ", "))
		}
	case StepGroups:
		if o.AdminGroup.Name == "" || o.AdminGroup.ID == "" {
			return "Save the name and the ID of the IdP group whose members may sign in."
		}
	case StepSAML:
		var missing []string
		if o.IdP.EntityID == "" {
			missing = append(missing, "the IdP entity ID")
		}
		if o.IdP.SSOURL == "" {
			missing = append(missing, "the SSO URL")
		}
		certs := storedCerts(o.IdP.Certificates)
		if len(certs) == 0 {
			missing = append(missing, "a signing certificate")
		} else if !anyCurrent(certs, now) {
			return "Every saved IdP signing certificate has expired; save the IdP's current certificate."
		}
		if len(missing) > 0 {
			return "Save the IdP settings: " + strings.Join(missing, ", ") + " (or import the IdP's metadata)."
		}
	case StepSCIM:
		if len(o.SCIMTokenHash) == 0 {
			return "Generate a SCIM token and enter it, with the SCIM base URL, in the IdP's provisioning settings."
		}
	case StepBackup:
		if o.BackupLogin == "" || f.backup == nil {
			return "Choose the backup login: a local account that has signed in at least once."
		}
		if err := eligibleBackup(f.backup); err != nil {
			return "The backup login cannot be used: " + err.Error() + "."
		}
	}
	return ""
}

// greyTitles returns the titles of the steps that are not green.
func greyTitles(steps []StepStatus) []string {
	var out []string
	for _, st := range steps {
		if !st.Done {
			out = append(out, st.Title)
		}
	}
	return out
}

// SetStepDone sets or clears the "done in the IdP" tick of a tickable step
// (register, saml, scim, users). The other steps turn green from what is
// saved, so ticking them is refused.
func (s *Service) SetStepDone(actor, orgID, step string, done bool) (*OrgView, error) {
	if !Tickable(step) {
		if StepTitle(step) == "" {
			return nil, invalid("step", "unknown step %q (the steps are %s)", step, strings.Join(Steps(), ", "))
		}
		return nil, invalid("step", "step %q turns green by itself once its settings are saved; it has no tick", step)
	}
	if _, err := s.getOrg(orgID); err != nil {
		return nil, err
	}
	changed := false
	o, err := s.store.UpdateOrg(orgID, func(o *store.Org) error {
		changed = o.Steps[step] != done
		if !changed {
			return nil
		}
		if o.Steps == nil {
			o.Steps = map[string]bool{}
		}
		if done {
			o.Steps[step] = true
		} else {
			delete(o.Steps, step)
		}
		o.Updated = time.Now().UTC()
		return nil
	})
	if err != nil {
		return nil, orgErr(orgID, err, "updating")
	}
	if changed {
		s.audit(orgID, actor, "step.set", OutcomeSuccess, map[string]string{"step": step, "done": fmt.Sprint(done)})
	}
	return s.view(o)
}

// StartConfiguring records that an org admin opened the configurator. It
// is idempotent. The first time, and whenever the organization has no
// backup login, the admin's own account (userID) becomes the backup login
// if it is eligible, so that an organization being set up always keeps a
// way in that does not depend on the IdP (SPEC §6 step 7).
func (s *Service) StartConfiguring(actor, orgID, userID string) (*OrgView, error) {
	o, err := s.getOrg(orgID)
	if err != nil {
		return nil, err
	}
	if o.ConfigStarted.IsZero() {
		o, err = s.store.UpdateOrg(orgID, func(o *store.Org) error {
			if o.ConfigStarted.IsZero() {
				o.ConfigStarted = time.Now().UTC()
			}
			return nil
		})
		if err != nil {
			return nil, orgErr(orgID, err, "updating")
		}
		s.audit(orgID, actor, "configurator.start", OutcomeSuccess, nil)
	}
	if userID != "" && !s.hasBackup(o) {
		o, err = s.designateStarter(actor, o, userID)
		if err != nil {
			return nil, err
		}
	}
	return s.view(o)
}

// hasBackup tells whether the organization's backup login designation
// points at an existing account.
func (s *Service) hasBackup(o *store.Org) bool {
	if o.BackupLogin == "" {
		return false
	}
	_, err := s.store.GetUser(o.ID, o.BackupLogin)
	return !errors.Is(err, store.ErrNotFound)
}

// designateStarter makes the admin who opened the configurator the backup
// login when their account is eligible; otherwise nothing changes.
func (s *Service) designateStarter(actor string, o *store.Org, userID string) (*store.Org, error) {
	u, err := s.store.GetUser(o.ID, userID)
	if errors.Is(err, store.ErrNotFound) {
		return o, nil
	}
	if err != nil {
		return nil, orgErr(o.ID, err, "reading a user of")
	}
	if eligibleBackup(u) != nil {
		return o, nil
	}
	updated, _, err := s.store.SetBackupLogin(o.ID, u.ID, eligibleBackup)
	var ne errNotEligible
	switch {
	case errors.As(err, &ne), errors.Is(err, store.ErrNotFound):
		return o, nil // changed meanwhile: leave it
	case err != nil:
		return nil, orgErr(o.ID, err, "designating the backup login of")
	}
	s.audit(o.ID, actor, "backup.set", OutcomeSuccess, map[string]string{
		"to": u.UserName, "to_id": u.ID, "reason": "the admin who opened the configurator",
	})
	return updated, nil
}

// notReady is Activate's refusal.
func notReady(missing []string) *Error {
	return &Error{Status: http.StatusConflict, Message: "organization is not ready for activation: every step must be green", Missing: missing}
}
