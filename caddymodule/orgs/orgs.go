// Package orgs holds the operations on an organization (tenant) and every
// rule they must obey: slug and domain syntax, DNS ownership proofs, IdP
// settings, the admin group mapping, and activation. The operator's admin API
// and the org admins' configurator are two front ends over the same Service,
// so neither can accept what the other would refuse.
//
// Service methods know nothing about HTTP; they return *Error for refusals a
// caller can act on (with the HTTP status that fits) and plain errors for
// internal failures. Every change is recorded in the audit trail with the
// actor that asked for it. AdminHandler is the JSON front end the operator's
// admin API serves; OrgHandler is the same code for one organization's
// admins, which the gateway mounts behind their session.
//
// The configurator's seven steps (SPEC §6) are computed, not stored: each
// view applies the step rules (steps.go) to the organization's settings,
// domains and backup login, plus the "done in the IdP" ticks the admins
// set. Activation requires all seven green. Verified domains are re-checked
// in DNS periodically (RecheckDueDomains); a lost TXT record unverifies
// the domain, a DNS failure never does.
package orgs

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/ssogate/ssogate/identity"
	"github.com/ssogate/ssogate/store"
)

// Audit outcomes.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeDenied  = "denied"
)

// Limits on what one organization may hold; they bound the work a single
// request can cause and the size of what every sign-in has to read.
const (
	maxNameLen       = 200
	maxEmailLen      = 254
	maxGroupFieldLen = 256
	maxDomainsPerOrg = 100
	defaultAuditList = 50
	maxAuditList     = 1000
)

// orgIDPattern is the slug syntax of SPEC §2. The ID appears in URLs
// (SAML endpoints, SCIM base URL), so nothing in it needs escaping.
var orgIDPattern = regexp.MustCompile(`^[a-z0-9-]{2,40}$`)

// SPURLs are the service-provider endpoints an organization's IdP must be
// told about.
type SPURLs struct {
	EntityID    string `json:"entity_id"`
	ACSURL      string `json:"acs_url"`
	MetadataURL string `json:"metadata_url"`
}

// Service performs the operations on organizations. It is safe for
// concurrent use.
type Service struct {
	store  *store.Store
	spURLs func(orgID string) SPURLs
	logger *zap.Logger

	// Resolver looks up domain verification TXT records. nil means
	// net.DefaultResolver. Set it right after New, before the Service is
	// shared; see NewResolver.
	Resolver *net.Resolver

	// HTTPClient fetches IdP metadata URLs (FetchIdPMetadata); nil means
	// a default client. Its timeout and redirect policy are replaced by
	// the fetch's own. Set it right after New (tests use it to trust a
	// test CA).
	HTTPClient *http.Client

	// AllowPrivateMetadataHosts lets metadata URLs reach loopback, private
	// and link-local addresses. Off, the default client refuses to connect
	// to them (checked on the address actually dialled, so DNS tricks do
	// not get around it): an org admin must not be able to make the
	// gateway probe its own network, Caddy's admin endpoint included.
	// Operators whose IdP publishes metadata only inside their network
	// turn it on. It applies only when HTTPClient is nil.
	AllowPrivateMetadataHosts bool

	// InviteTTL is how long a set-password link works; 0 means
	// DefaultInviteTTL (72h). Set it right after New.
	InviteTTL time.Duration
}

// New returns a Service over st. spURLs gives the SP endpoints of an
// organization (they depend on the gateway's base URL and route prefix,
// which this package does not know).
func New(st *store.Store, spURLs func(orgID string) SPURLs, logger *zap.Logger) *Service {
	if logger == nil {
		logger = zap.NewNop()
	}
	return &Service{store: st, spURLs: spURLs, logger: logger}
}

// OrgView is an organization as shown to the people who manage it: its
// settings without any secret or secret hash, its domains, the SP endpoints
// to configure in the IdP, and what activation still needs.
type OrgView struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	OwnerEmail string    `json:"owner_email,omitempty"`
	Created    time.Time `json:"created"`
	Updated    time.Time `json:"updated"`

	State          string    `json:"state"`
	StateChangedBy string    `json:"state_changed_by,omitempty"`
	StateChangedAt time.Time `json:"state_changed_at,omitzero"`

	// Steps are the configurator's seven steps, in order, each green or
	// grey; Started tells whether an org admin has opened it.
	Steps             []StepStatus       `json:"steps"`
	Started           bool               `json:"started"`
	AllowIdPInitiated bool               `json:"allow_idp_initiated"`
	IdP               IdPView            `json:"idp"`
	AdminGroup        store.GroupMapping `json:"admin_group"`
	// ConfigGroup: see store.Org.
	ConfigGroup store.GroupMapping `json:"config_group"`
	BackupLogin string             `json:"backup_login,omitempty"`

	// SCIMToken tells whether a SCIM token exists; the token itself is
	// shown only once, when generated, and only its hash is stored.
	SCIMToken         bool      `json:"scim_token"`
	SCIMTokenCreated  time.Time `json:"scim_token_created,omitzero"`
	SCIMTokenLastUsed time.Time `json:"scim_token_last_used,omitzero"`

	Domains []DomainView `json:"domains"`
	SP      SPURLs       `json:"sp"`

	// Missing lists the titles of the grey steps, which activation
	// still needs; empty when ready.
	Missing []string `json:"missing"`
}

// IdPView is the IdP settings with a readable summary of each certificate.
type IdPView struct {
	EntityID        string     `json:"entity_id,omitempty"`
	SSOURL          string     `json:"sso_url,omitempty"`
	Certificates    []string   `json:"certificates,omitempty"`
	CertificateInfo []CertInfo `json:"certificate_info,omitempty"`
	MetadataURL     string     `json:"metadata_url,omitempty"`
}

// CertInfo summarizes an IdP signing certificate.
type CertInfo struct {
	Subject   string    `json:"subject"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	SHA256    string    `json:"sha256"` // fingerprint of the DER, hex
	Expired   bool      `json:"expired,omitempty"`
}

// OrgSummary is one line of the organization list.
type OrgSummary struct {
	ID              string    `json:"id"`
	Name            string    `json:"name"`
	OwnerEmail      string    `json:"owner_email,omitempty"`
	State           string    `json:"state"`
	Created         time.Time `json:"created"`
	VerifiedDomains []string  `json:"verified_domains"`
	PendingDomains  []string  `json:"pending_domains"`
}

// OrgUpdate is a partial change of an organization's plain settings; nil
// fields stay as they are.
type OrgUpdate struct {
	Name              *string `json:"name,omitempty"`
	AllowIdPInitiated *bool   `json:"allow_idp_initiated,omitempty"`
}

// CreateOrg is in local.go: an organization is created with its owner.

// GetOrg returns an organization with its domains and readiness.
func (s *Service) GetOrg(id string) (*OrgView, error) {
	o, err := s.getOrg(id)
	if err != nil {
		return nil, err
	}
	return s.view(o)
}

// ListOrgs lists all organizations.
func (s *Service) ListOrgs() ([]OrgSummary, error) {
	all, err := s.store.ListOrgs()
	if err != nil {
		return nil, fmt.Errorf("listing organizations: %w", err)
	}
	out := make([]OrgSummary, 0, len(all))
	for _, o := range all {
		domains, err := s.store.ListDomains(o.ID)
		if err != nil {
			return nil, fmt.Errorf("listing domains of organization %q: %w", o.ID, err)
		}
		sum := OrgSummary{
			ID: o.ID, Name: o.Name, OwnerEmail: o.OwnerEmail, State: o.State, Created: o.Created,
			VerifiedDomains: []string{}, PendingDomains: []string{},
		}
		for _, d := range domains {
			if d.Status == store.DomainVerified {
				sum.VerifiedDomains = append(sum.VerifiedDomains, d.Name)
			} else {
				sum.PendingDomains = append(sum.PendingDomains, d.Name)
			}
		}
		out = append(out, sum)
	}
	return out, nil
}

// DeleteOrg deletes an organization and everything that belongs to it:
// domains (which frees them for other organizations), users, groups,
// sessions, credentials.
func (s *Service) DeleteOrg(actor, id string) error {
	if _, err := s.getOrg(id); err != nil {
		return err
	}
	if err := s.store.DeleteOrg(id); err != nil {
		return orgErr(id, err, "deleting")
	}
	// The org's own audit trail went with it; this event is kept outside
	// any org so the deletion itself stays on record.
	s.audit("", actor, "org.delete", OutcomeSuccess, map[string]string{"org": id})
	return nil
}

// UpdateOrg changes an organization's name and whether it accepts
// IdP-initiated sign-ins.
func (s *Service) UpdateOrg(actor, id string, u OrgUpdate) (*OrgView, error) {
	if _, err := s.getOrg(id); err != nil {
		return nil, err
	}
	if u.Name == nil && u.AllowIdPInitiated == nil {
		return nil, invalid("", "nothing to change: give name and/or allow_idp_initiated")
	}
	details := map[string]string{}
	var name string
	if u.Name != nil {
		var err error
		if name, err = cleanText("name", *u.Name, maxNameLen); err != nil {
			return nil, err
		}
		details["name"] = name
	}
	if u.AllowIdPInitiated != nil {
		details["allow_idp_initiated"] = fmt.Sprint(*u.AllowIdPInitiated)
	}
	o, err := s.store.UpdateOrg(id, func(o *store.Org) error {
		if u.Name != nil {
			o.Name = name
		}
		if u.AllowIdPInitiated != nil {
			o.AllowIdPInitiated = *u.AllowIdPInitiated
		}
		o.Updated = time.Now().UTC()
		return nil
	})
	if err != nil {
		return nil, orgErr(id, err, "updating")
	}
	s.audit(id, actor, "org.update", OutcomeSuccess, details)
	return s.view(o)
}

// SetAdminGroup maps the IdP group whose members may sign in (SPEC §6 step
// 3). Both the group's name and its IdP ID are required.
func (s *Service) SetAdminGroup(actor, id, name, groupID string) (*OrgView, error) {
	if _, err := s.getOrg(id); err != nil {
		return nil, err
	}
	name, err := cleanText("name", name, maxGroupFieldLen)
	if err != nil {
		return nil, err
	}
	groupID, err = cleanText("id", groupID, maxGroupFieldLen)
	if err != nil {
		return nil, err
	}
	o, err := s.store.UpdateOrg(id, func(o *store.Org) error {
		o.AdminGroup = store.GroupMapping{Name: name, ID: groupID}
		o.Updated = time.Now().UTC()
		return nil
	})
	if err != nil {
		return nil, orgErr(id, err, "updating")
	}
	s.audit(id, actor, "admin_group.set", OutcomeSuccess, map[string]string{"name": name, "id": groupID})
	return s.view(o)
}

// SetConfigGroup maps the IdP group whose members, signed in with SSO,
// may also change the org's SSO settings (the configurator and the users
// page). Both empty clears it: then only local admin accounts may, which
// is the default, so that everyone who can sign in with SSO cannot also
// switch it off or take over the org's provisioning.
func (s *Service) SetConfigGroup(actor, id, name, groupID string) (*OrgView, error) {
	if _, err := s.getOrg(id); err != nil {
		return nil, err
	}
	var m store.GroupMapping
	if strings.TrimSpace(name) != "" || strings.TrimSpace(groupID) != "" {
		var err error
		if m.Name, err = cleanText("name", name, maxGroupFieldLen); err != nil {
			return nil, err
		}
		if m.ID, err = cleanText("id", groupID, maxGroupFieldLen); err != nil {
			return nil, err
		}
	}
	o, err := s.store.UpdateOrg(id, func(o *store.Org) error {
		o.ConfigGroup = m
		o.Updated = time.Now().UTC()
		return nil
	})
	if err != nil {
		return nil, orgErr(id, err, "updating")
	}
	s.audit(id, actor, "config_group.set", OutcomeSuccess, map[string]string{"name": m.Name, "id": m.ID})
	return s.view(o)
}

// Activate turns on SSO for an organization. It refuses with 409,
// listing the titles of the grey steps in Missing, unless all seven steps
// of the configurator are green.
func (s *Service) Activate(actor, id string) (*OrgView, error) {
	cur, err := s.getOrg(id)
	if err != nil {
		return nil, err
	}
	facts, err := s.loadStepFacts(cur)
	if err != nil {
		return nil, err
	}
	var missing []string
	o, err := s.store.UpdateOrg(id, func(o *store.Org) error {
		// The org record's part of the rules is checked inside the
		// transaction, so a concurrent IdP change or untick cannot slip
		// between the check and the switch.
		if missing = greyTitles(stepStatuses(o, facts, time.Now())); len(missing) > 0 {
			return notReady(missing)
		}
		if o.State == store.OrgActive {
			return nil
		}
		now := time.Now().UTC()
		o.State = store.OrgActive
		o.StateChangedBy = actor
		o.StateChangedAt = now
		o.Updated = now
		return nil
	})
	if err != nil {
		if len(missing) > 0 {
			s.audit(id, actor, "org.activate", OutcomeDenied, map[string]string{"missing": strings.Join(missing, ", ")})
		}
		return nil, orgErr(id, err, "activating")
	}
	s.audit(id, actor, "org.activate", OutcomeSuccess, nil)
	return s.view(o)
}

// Deactivate turns off SSO for an organization and ends its SSO sessions;
// backup logins keep working.
func (s *Service) Deactivate(actor, id string) (*OrgView, error) {
	if _, err := s.getOrg(id); err != nil {
		return nil, err
	}
	o, err := s.store.UpdateOrg(id, func(o *store.Org) error {
		if o.State == store.OrgInactive {
			return nil
		}
		now := time.Now().UTC()
		o.State = store.OrgInactive
		o.StateChangedBy = actor
		o.StateChangedAt = now
		o.Updated = now
		return nil
	})
	if err != nil {
		return nil, orgErr(id, err, "deactivating")
	}
	// Done even if the org was inactive already: it costs little and
	// guarantees no SAML session survives a deactivation request.
	n, err := s.store.DeleteOrgSessions(id, "saml")
	if err != nil {
		return nil, orgErr(id, err, "ending SSO sessions of")
	}
	s.audit(id, actor, "org.deactivate", OutcomeSuccess, map[string]string{"sessions_ended": fmt.Sprint(n)})
	return s.view(o)
}

// Audit returns a page of an organization's audit events, newest first:
// at most limit (0 means a default of 50; at most 1000) of those older
// than the event the cursor before names ("" starts at the newest), and
// the cursor of the next page ("" at the end).
func (s *Service) Audit(id, before string, limit int) ([]*store.AuditEvent, string, error) {
	if limit < 0 || limit > maxAuditList {
		return nil, "", invalid("limit", "must be between 1 and %d", maxAuditList)
	}
	if limit == 0 {
		limit = defaultAuditList
	}
	if _, err := s.getOrg(id); err != nil {
		return nil, "", err
	}
	events, next, err := s.store.ListAuditPage(id, before, limit)
	if errors.Is(err, store.ErrInvalid) {
		return nil, "", invalid("before", "is not a cursor from a previous page")
	}
	if err != nil {
		return nil, "", orgErr(id, err, "reading audit trail of")
	}
	return events, next, nil
}

// getOrg loads an organization; an ID that cannot exist is simply not
// found.
func (s *Service) getOrg(id string) (*store.Org, error) {
	if !orgIDPattern.MatchString(id) {
		return nil, notFound("organization %q not found", id)
	}
	o, err := s.store.GetOrg(id)
	if err != nil {
		return nil, orgErr(id, err, "reading")
	}
	return o, nil
}

func (s *Service) view(o *store.Org) (*OrgView, error) {
	facts, err := s.loadStepFacts(o)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	v := &OrgView{
		ID: o.ID, Name: o.Name, OwnerEmail: o.OwnerEmail, Created: o.Created, Updated: o.Updated,
		State: o.State, StateChangedBy: o.StateChangedBy, StateChangedAt: o.StateChangedAt,
		Steps:             stepStatuses(o, facts, now),
		Started:           !o.ConfigStarted.IsZero(),
		AllowIdPInitiated: o.AllowIdPInitiated,
		IdP: IdPView{
			EntityID:     o.IdP.EntityID,
			SSOURL:       o.IdP.SSOURL,
			Certificates: o.IdP.Certificates,
			MetadataURL:  o.IdP.MetadataURL,
		},
		AdminGroup:        o.AdminGroup,
		ConfigGroup:       o.ConfigGroup,
		BackupLogin:       o.BackupLogin,
		SCIMToken:         len(o.SCIMTokenHash) > 0,
		SCIMTokenCreated:  o.SCIMTokenCreated,
		SCIMTokenLastUsed: o.SCIMTokenLastUsed,
		Domains:           make([]DomainView, 0, len(facts.domains)),
	}
	v.Missing = greyTitles(v.Steps)
	for _, c := range storedCerts(o.IdP.Certificates) {
		v.IdP.CertificateInfo = append(v.IdP.CertificateInfo, certInfo(c, now))
	}
	for _, d := range facts.domains {
		v.Domains = append(v.Domains, domainView(d))
	}
	if s.spURLs != nil {
		v.SP = s.spURLs(o.ID)
	}
	if v.Missing == nil {
		v.Missing = []string{}
	}
	return v, nil
}

func anyCurrent(certs []*x509.Certificate, now time.Time) bool {
	for _, c := range certs {
		if now.Before(c.NotAfter) {
			return true
		}
	}
	return false
}

// audit records an event. A failure to record is logged, not returned: the
// change it describes has already happened.
func (s *Service) audit(orgID, actor, action, outcome string, details map[string]string) {
	e := &store.AuditEvent{
		Time:    time.Now().UTC(),
		OrgID:   orgID,
		Actor:   actor,
		Action:  action,
		Outcome: outcome,
		Details: details,
	}
	fields := []zap.Field{
		zap.String("org", orgID), zap.String("actor", actor),
		zap.String("action", action), zap.String("outcome", outcome),
	}
	if orgID == "" && details["org"] != "" {
		fields[0] = zap.String("org", details["org"])
	}
	if err := s.store.AppendAudit(e); err != nil {
		s.logger.Error("recording audit event", append(fields, zap.Error(err))...)
		return
	}
	s.logger.Info("organization changed", fields...)
}

// cleanText trims s and requires a non-empty, printable value of at most
// max characters.
func cleanText(field, s string, max int) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", invalid(field, "is required")
	}
	if !utf8.ValidString(s) {
		return "", invalid(field, "is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(s); n > max {
		return "", invalid(field, "is too long (%d characters, at most %d)", n, max)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return "", invalid(field, "must not contain control characters")
		}
	}
	return s, nil
}

// normalizeEmail accepts exactly one bare address (identity.ParseEmail)
// and returns its matching form, identity.Key: local accounts sign in
// with it, so it is stored the way it is looked up.
func normalizeEmail(field, s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", invalid(field, "is required")
	}
	if len(s) > maxEmailLen {
		return "", invalid(field, "is too long (at most %d characters)", maxEmailLen)
	}
	if _, err := identity.ParseEmail(s); err != nil {
		return "", invalid(field, "%q is not a plain email address (like alice@example.com)", s)
	}
	return identity.Key(s), nil
}
