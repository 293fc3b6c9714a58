package pages

import "html/template"

// Backup is the data of the password sign-in page.
type Backup struct {
	Prefix   string
	Email    string // echoed back after an error
	Org      string // org ID from the link followed, picks the account
	ReturnTo string // same-origin path to go to after sign-in
	CSRF     string // the form's anti-CSRF token
	Error    string
	Notice   string
	// UseSSO offers "Continue with SSO" prominently: the account's
	// organization signs in with SSO.
	UseSSO bool
}

// SetPassword is the data of the page where a local account chooses its
// password through a one-time link.
type SetPassword struct {
	Prefix    string
	Token     string // the link's token, for the form action
	Email     string
	OrgName   string
	Expires   string // when the link stops working, readable
	CSRF      string
	Error     string
	MinLength int
	// SSOOnly: the org signs in with SSO and this account is not its
	// backup login, so the password will not sign it in.
	SSOOnly bool
}

// Users is the data of the org admin's users page.
type Users struct {
	Prefix  string
	OrgName string
	Me      string // the signed-in admin
	CSRF    string
	Role    string // filter
	Status  string // filter
	Users   []UserRow
	Notice  string
	Error   string
	NewLink *NewLink // a set-password link to show once
	// SSOActive: the org signs in with SSO; new local accounts cannot
	// sign in with a password.
	SSOActive bool

	// Script is filled in by RenderWithScript.
	Script template.JS
}

// UserRow is one line of the users page.
type UserRow struct {
	ID, Name, Email, Source, Role, Status string
	LastLogin, InviteExpires              string
	Backup                                bool
	// Removable: a local account other than the backup login and the
	// viewer's own.
	Removable bool
	// Reinvitable: a local account that has not set its password yet.
	Reinvitable bool
	// Unlinkable: another user whose stored IdP identifier can be
	// forgotten (orgs.Service.UnlinkUser).
	Unlinkable bool
}

// NewLink is a set-password link just issued.
type NewLink struct {
	Email, URL, Expires string
	// SSOOnly: the account will not sign in with its password.
	SSOOnly bool
}

// Page names the admin page for the navigation bar.
func (Users) Page() string { return "users" }
