package pages

// Attempts is the data of the org admin's sign-in attempts page
// ({prefix}/admin/signin-attempts): recent SAML sign-ins, newest first,
// each with what went wrong, how to fix it at the IdP, and the shape of
// what arrived.
type Attempts struct {
	Prefix  string
	OrgName string
	Me      string // the signed-in admin
	CSRF    string
	Active  bool
	// Ref is the reference code searched for; Attempts then holds only it.
	Ref string
	// CanTest: the org's IdP settings are complete, so a Test sign-in can
	// start.
	CanTest           bool
	AllowIdPInitiated bool
	Notice            string
	Error             string
	Attempts          []AttemptRow
}

// AttemptRow is one sign-in attempt, formatted for display.
type AttemptRow struct {
	Ref, Time, Outcome string
	Test               bool
	Problem, Fix       string
	Detail             string // the precise reason, as logged
	Email, SourceIP    string
	// The shape of what arrived; Shape is false when nothing readable did.
	Shape                            bool
	Issuer, Destination, StatusCode  string
	NameIDFormat, Signed, Encrypted  string
	SignatureAlgs, DigestAlgs, Clock string
	AttributeNames                   []string
	GroupValues                      int
}

// Page names the admin page for the navigation bar.
func (Attempts) Page() string { return "attempts" }
