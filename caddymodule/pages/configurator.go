package pages

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"html/template"
	"net/http"
)

// copyScript is the configurator's only script: copy buttons. The page
// works without it (the values are selectable text); it is inlined and
// allowed by its hash, so the page's CSP admits no other script.
//
//go:embed assets/copy.js
var copyScript string

// Configurator is the data of the org admin's configurator page
// ({prefix}/admin/): seven steps that connect the organization's IdP.
type Configurator struct {
	Prefix  string
	OrgID   string
	OrgName string
	Me      string // the signed-in admin
	CSRF    string

	// Started: an admin has pressed "Start configuring"; before that the
	// page shows only the introduction.
	Started bool
	Active  bool
	// StateChanged says when and by whom the org was (de)activated.
	StateChanged string
	Done, Total  int
	Percent      int // of steps done, for the progress bar
	AllDone      bool
	Missing      []string // titles of the grey steps

	Notice string // flash message after a successful change
	Error  string // a page-level refusal (e.g. activation)
	// Err holds the errors of the form just posted, keyed "form.field"
	// (e.g. "group.name"), or "form." when no single field is at fault.
	Err map[string]string
	// Focus is the Err key of the first error, which gets the focus.
	Focus string
	// Open is the step whose section is expanded.
	Open string

	Steps []ConfigStep

	SP          SPValues
	SCIMBaseURL string

	Domains   []DomainRow
	NewDomain string // echoed after an error

	GroupName, GroupID string
	// CfgGroupName and CfgGroupID map the IdP group whose members may
	// change SSO too; empty: local admins only.
	CfgGroupName, CfgGroupID string

	IdP   IdPForm
	Certs []CertRow

	SCIMToken    bool
	SCIMCreated  string
	SCIMLastUsed string
	NewSCIMToken string // shown once, in the response to the post

	Backup BackupInfo

	// Script is filled in by RenderConfigurator.
	Script template.JS
}

// ConfigStep is one step's section header.
type ConfigStep struct {
	Number   int
	Name     string
	Title    string // heading, in the vendor guide's words
	Done     bool
	Ticked   bool
	Tickable bool
	Todo     string
}

// SPValues are what the admin copies into the IdP.
type SPValues struct {
	EntityID, ACSURL, MetadataURL string
}

// DomainRow is one domain of the domains step.
type DomainRow struct {
	Name      string
	Display   string // Unicode form for internationalized names
	Verified  bool
	TXTName   string
	TXTValue  string
	LastCheck string
	Result    string
}

// IdPForm is the SAML step's input, as saved or as just posted.
type IdPForm struct {
	Mode        string // "metadata_url", "metadata_xml" or "manual"
	EntityID    string
	SSOURL      string
	Certificate string
	MetadataURL string
	MetadataXML string
	Saved       bool // settings are stored
}

// CertRow is one IdP signing certificate.
type CertRow struct {
	Subject, NotAfter, SHA256 string
	Expired                   bool
}

// BackupInfo is the backup login step.
type BackupInfo struct {
	Current   string
	Ready     bool
	LastLogin string
	Eligible  []BackupOption
}

// BackupOption is an account the backup login may move to.
type BackupOption struct {
	ID, Label string
}

// RenderConfigurator renders the configurator page with a CSP that allows
// its copy script and nothing else.
func (r *Renderer) RenderConfigurator(w http.ResponseWriter, status int, c *Configurator) {
	c.Script = template.JS(copyScript)
	r.render(w, status, "configurator", c, scriptCSP)
}

// RenderWithScript renders the users page with the copy script, under the
// same CSP as the configurator.
func (r *Renderer) RenderWithScript(w http.ResponseWriter, status int, name string, u *Users) {
	u.Script = template.JS(copyScript)
	r.render(w, status, name, u, scriptCSP)
}

// scriptCSP admits the copy script, by its hash, and no other.
var scriptCSP = func() string {
	sum := sha256.Sum256([]byte(copyScript))
	return "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
}()

// Page names the admin page for the navigation bar.
func (Configurator) Page() string { return "config" }
