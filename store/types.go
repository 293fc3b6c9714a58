package store

import (
	"errors"
	"time"
)

// Errors returned by the store. Callers match them with errors.Is; no Badger
// error ever escapes the package unwrapped.
var (
	// ErrNotFound: the record does not exist (or its TTL has passed).
	ErrNotFound = errors.New("not found")
	// ErrExists: a record with the same primary key already exists.
	ErrExists = errors.New("already exists")
	// ErrConflict: a uniqueness rule held by a secondary index would be
	// broken (a userName or externalId already used in the org, a domain
	// already verified by another organization, ...).
	ErrConflict = errors.New("conflict")
	// ErrReplayed: ConsumeOnce saw the key before.
	ErrReplayed = errors.New("already used")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("store closed")
	// ErrInvalid: an argument is malformed (empty ID, bad org slug, ...).
	ErrInvalid = errors.New("invalid argument")
	// ErrAmbiguous: a look-up by a name that several records share
	// (group displayNames) found more than one.
	ErrAmbiguous = errors.New("ambiguous")
)

// Integration states of an organization.
const (
	OrgInactive = "inactive"
	OrgActive   = "active"
)

// Domain verification states.
const (
	DomainPending  = "pending"
	DomainVerified = "verified"
)

// User sources.
const (
	SourceSCIM  = "scim"
	SourceSAML  = "saml"
	SourceLocal = "local"
)

// Org is a tenant: one customer organization with its own domains, IdP,
// users, groups and credentials.
type Org struct {
	ID         string    `json:"id"` // slug [a-z0-9-]{2,40}, immutable
	Name       string    `json:"name"`
	OwnerEmail string    `json:"owner_email,omitempty"`
	Created    time.Time `json:"created"`
	Updated    time.Time `json:"updated"`

	State          string    `json:"state"` // OrgInactive | OrgActive
	StateChangedBy string    `json:"state_changed_by,omitempty"`
	StateChangedAt time.Time `json:"state_changed_at,omitzero"`

	// Steps holds the configurator's step completion flags ("done in the
	// IdP" ticks and the like), keyed by step name.
	Steps map[string]bool `json:"steps,omitempty"`
	// ConfigStarted is when an org admin first opened the configurator
	// (zero: never).
	ConfigStarted time.Time `json:"config_started,omitzero"`

	IdP        IdPSettings  `json:"idp"`
	AdminGroup GroupMapping `json:"admin_group"`
	// ConfigGroup is the IdP group whose members may also change the
	// org's SSO settings when signed in with SSO; empty (the default):
	// only local admin accounts (the owner among them) may.
	ConfigGroup GroupMapping `json:"config_group,omitzero"`

	// AllowIdPInitiated accepts unsolicited SAML responses for this org.
	// Off unless the operator turns it on.
	AllowIdPInitiated bool `json:"allow_idp_initiated,omitempty"`

	// BackupLogin is the user ID of the designated backup login account.
	BackupLogin string `json:"backup_login,omitempty"`

	// SCIMTokenHash is the SHA-256 of the org's SCIM bearer token.
	SCIMTokenHash     []byte    `json:"scim_token_hash,omitempty"`
	SCIMTokenCreated  time.Time `json:"scim_token_created,omitzero"`
	SCIMTokenLastUsed time.Time `json:"scim_token_last_used,omitzero"`
}

// IdPSettings is what the org's Identity Provider told us about itself.
type IdPSettings struct {
	EntityID     string   `json:"entity_id,omitempty"`
	SSOURL       string   `json:"sso_url,omitempty"`
	Certificates []string `json:"certificates,omitempty"` // PEM, several for rollover
	MetadataURL  string   `json:"metadata_url,omitempty"`
	// SLOURL is the IdP's SingleLogoutService (HTTP-Redirect binding);
	// empty when it has none, and sign-out then ends only our session.
	SLOURL string `json:"slo_url,omitempty"`
}

// GroupMapping names the IdP group whose members may sign in.
type GroupMapping struct {
	Name string `json:"name,omitempty"`
	ID   string `json:"id,omitempty"`
}

// Domain is an email domain claimed by an organization. Only verified
// domains route sign-ins; a verified domain belongs to exactly one org.
type Domain struct {
	Name       string    `json:"name"` // lower-case, IDNA (punycode) form
	OrgID      string    `json:"org_id"`
	Token      string    `json:"token"`  // DNS TXT verification token
	Status     string    `json:"status"` // DomainPending | DomainVerified
	Created    time.Time `json:"created"`
	VerifiedAt time.Time `json:"verified_at,omitzero"`
	// VerifiedBy says how the domain was verified: "dns" (its TXT record,
	// re-checked periodically) or "operator" (vouched for; not re-checked).
	VerifiedBy string    `json:"verified_by,omitempty"`
	LastCheck  time.Time `json:"last_check,omitzero"`
	LastResult string    `json:"last_result,omitempty"`
}

// Email is one of a user's addresses.
type Email struct {
	Value   string `json:"value"`
	Type    string `json:"type,omitempty"`
	Primary bool   `json:"primary,omitempty"`
}

// User is a person of one organization, whichever way they arrived
// (SCIM provisioning, first SAML sign-in, or a local account).
type User struct {
	ID         string  `json:"id"` // UUID, assigned by CreateUser when empty
	OrgID      string  `json:"org_id"`
	UserName   string  `json:"user_name"` // unique per org, case-insensitively
	ExternalID string  `json:"external_id,omitempty"`
	Emails     []Email `json:"emails,omitempty"`

	DisplayName string `json:"display_name,omitempty"`
	GivenName   string `json:"given_name,omitempty"`
	FamilyName  string `json:"family_name,omitempty"`

	Active bool   `json:"active"`
	Source string `json:"source"` // SourceSCIM | SourceSAML | SourceLocal

	// SCIM carries the last SCIM representation's extra attributes the
	// SCIM layer wants to round-trip (opaque to the store).
	SCIM map[string]any `json:"scim,omitempty"`

	// Local account fields.
	PasswordHash string `json:"password_hash,omitempty"`
	Role         string `json:"role,omitempty"` // "admin" | "user" for local accounts
	// CredVersion changes whenever the account's password is reset or
	// replaced (a set-password link issued or used), so that what was
	// bound to the old credentials (trusted-device cookies) stops
	// working. Records from before it read as 0.
	CredVersion uint64 `json:"cred_version,omitempty"`

	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	LastLogin time.Time `json:"last_login,omitzero"`
}

// Group is an IdP group pushed over SCIM.
type Group struct {
	ID          string    `json:"id"` // UUID, assigned by CreateGroup when empty
	OrgID       string    `json:"org_id"`
	DisplayName string    `json:"display_name"` // not unique: see GroupByDisplayName
	ExternalID  string    `json:"external_id,omitempty"`
	Members     []string  `json:"members,omitempty"` // user IDs of this org
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
}

// Session is a signed-in browser. The cookie carries only a reference to it;
// the record is what makes it revocable.
type Session struct {
	ID         string    `json:"id"` // the lookup key (a hash of the cookie's reference)
	OrgID      string    `json:"org_id"`
	UserID     string    `json:"user_id"`
	AuthMethod string    `json:"auth_method"`      // "saml" | "backup" | "password"
	Groups     []string  `json:"groups,omitempty"` // groups asserted at sign-in
	NameID     string    `json:"name_id,omitempty"`
	Created    time.Time `json:"created"`
	LastSeen   time.Time `json:"last_seen"`
	ExpiresAt  time.Time `json:"expires_at"` // absolute end; the record's TTL

	// Email is the address the sign-in vouched for (SAML: the asserted
	// email, whose domain the org had verified); re-checked per request.
	Email string `json:"email,omitempty"`
	// AuthTime is when the user authenticated at the IdP or with a
	// password; zero in records from before it was kept (Created then).
	AuthTime time.Time `json:"auth_time,omitzero"`
	// SessionIndex is the IdP session the assertion came from, which an
	// IdP's LogoutRequest may name (SAML sessions only).
	SessionIndex string `json:"session_index,omitempty"`
}

// AuthnRequest is an outstanding SAML AuthnRequest, remembered so that the
// response must answer it and so that the return URL never travels through
// the IdP.
type AuthnRequest struct {
	ID       string `json:"id"` // the AuthnRequest's ID attribute
	OrgID    string `json:"org_id"`
	Binding  string `json:"binding"`             // ties it to one browser (hash of a cookie value)
	ReturnTo string `json:"return_to,omitempty"` // same-origin path
	// Test marks an org admin's Test sign-in: its answer is validated and
	// recorded as a sign-in attempt, and starts no session.
	Test      bool      `json:"test,omitempty"`
	Created   time.Time `json:"created"`
	ExpiresAt time.Time `json:"expires_at"`
}

// AuditEvent records who did what to which org, and how it went.
type AuditEvent struct {
	ID       string            `json:"id"` // assigned by AppendAudit
	Time     time.Time         `json:"time"`
	OrgID    string            `json:"org_id,omitempty"`
	Actor    string            `json:"actor"`
	Action   string            `json:"action"`
	Outcome  string            `json:"outcome"` // "success" | "failure" | "denied"
	SourceIP string            `json:"source_ip,omitempty"`
	Details  map[string]string `json:"details,omitempty"`

	// An aggregated event (AppendAuditAggregated) stands for Count
	// identical occurrences (0 means 1) from First to Time. Actor and
	// SourceIP are the first occurrence's; Actors and Sources sample the
	// distinct ones, at most MaxAuditSamples each.
	Count   int       `json:"count,omitempty"`
	First   time.Time `json:"first,omitzero"`
	Actors  []string  `json:"actors,omitempty"`
	Sources []string  `json:"sources,omitempty"`
}
