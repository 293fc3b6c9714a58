// Package demoidp is a small but real SAML 2.0 Identity Provider for the
// `ssogate demo` command and for end-to-end tests. It is crewjam's samlidp
// server with a fixed set of users, whose assertions carry the attributes an
// Okta application configured by the vendor guide sends: objectidentifier,
// name, displayName and groups, with the email address as NameID.
//
// Browsers sign in through Handler (login form, HTTP-Redirect and HTTP-POST
// SSO endpoint, metadata). Tests that need responses no honest IdP would send
// (expired, for another audience, unsigned, tampered with ...) use Respond,
// Unsolicited and RespondWith, which skip the login form but produce the same
// kind of response, signed with the IdP's key unless told otherwise.
//
// samlidp's administrative REST endpoints (/users, /services, /sessions,
// /shortcuts) are disabled: they are unauthenticated, and the demo IdP is
// configured only through Config and RegisterServiceProvider.
package demoidp

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/url"
	"regexp"
	"strings"

	"github.com/crewjam/saml/samlidp"
	"github.com/google/uuid"
	"go.uber.org/zap"
)

// User is an account of the demo IdP.
type User struct {
	// Email is the login name, the NameID (emailAddress format) and the
	// value of the name attribute. It is compared case-insensitively.
	Email       string
	Password    string
	DisplayName string // defaults to "GivenName FamilyName"
	GivenName   string
	FamilyName  string
	ObjectID    string   // stable IdP user id; derived from Email if empty
	Groups      []string // group names asserted in the groups attribute
}

// Config configures New.
type Config struct {
	// BaseURL is the absolute URL where Handler is served, e.g.
	// "http://127.0.0.1:8081". It may have a path; Handler then expects
	// requests with that path prefix.
	BaseURL string
	Users   []User

	// Key and Certificate sign the responses and assertions. If Key is nil
	// an RSA-2048 key is generated; if Certificate is nil a self-signed
	// certificate for Key is made. Key must be RSA (2048 bits or more) or
	// ECDSA.
	Key         crypto.Signer
	Certificate *x509.Certificate

	Logger *zap.Logger // optional
}

// IdP is a running demo Identity Provider. Its configuration does not change
// after New, except for the service providers registered with
// RegisterServiceProvider; it is safe for concurrent use.
type IdP struct {
	server  *samlidp.Server
	handler http.Handler
	key     crypto.Signer
	cert    *x509.Certificate
	// users holds the configured users by their normalized email. It is
	// never modified after New.
	users map[string]User
}

// The minimum RSA key size accepted for signing.
const minRSABits = 2048

// New validates cfg and builds the IdP. Passwords are handed to samlidp,
// which stores them as bcrypt hashes.
func New(cfg Config) (*IdP, error) {
	base, err := parseBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	users, err := normalizeUsers(cfg.Users)
	if err != nil {
		return nil, err
	}
	key, cert, err := signingKeyPair(cfg.Key, cfg.Certificate)
	if err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = zap.NewNop()
	}

	server, err := samlidp.New(samlidp.Options{
		URL:               *base,
		Signer:            key,
		Key:               key,
		Certificate:       cert,
		Logger:            zap.NewStdLog(logger.Named("demoidp")),
		Store:             &samlidp.MemoryStore{},
		LoginFormTemplate: loginFormTemplate,
		AdminMiddleware:   disableAdminAPI,
	})
	if err != nil {
		return nil, fmt.Errorf("demoidp: starting samlidp: %w", err)
	}
	idp := &IdP{server: server, key: key, cert: cert, users: users}
	server.IDP.AssertionMaker = guideAssertionMaker{users: users}

	for _, u := range cfg.Users {
		if err := idp.storeUser(users[normalizeEmail(u.Email)]); err != nil {
			return nil, err
		}
	}

	var h http.Handler = frontDoor(server)
	if base.Path != "" {
		h = http.StripPrefix(base.Path, h)
	}
	idp.handler = h
	return idp, nil
}

// Handler serves the IdP: /sso (SSO endpoint, HTTP-Redirect and HTTP-POST
// bindings, with the login form), /login, /login/{service} (IdP-initiated
// login to a registered service provider), /metadata, /slo and /logout, all
// below the path of Config.BaseURL.
func (i *IdP) Handler() http.Handler { return i.handler }

// EntityID is the IdP's entity ID: its metadata URL, as samlidp uses.
func (i *IdP) EntityID() string { return i.server.IDP.MetadataURL.String() }

// SSOURL is the SSO endpoint (HTTP-Redirect and HTTP-POST bindings).
func (i *IdP) SSOURL() string { return i.server.IDP.SSOURL.String() }

// Certificate returns the signing certificate.
func (i *IdP) Certificate() *x509.Certificate { return i.cert }

// CertificatePEM returns the signing certificate, PEM-encoded, as an admin
// pastes it into the configurator.
func (i *IdP) CertificatePEM() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: i.cert.Raw}))
}

// MetadataXML returns the IdP metadata, as served at EntityID.
func (i *IdP) MetadataXML() ([]byte, error) {
	buf, err := xml.MarshalIndent(i.server.IDP.Metadata(), "", "  ")
	if err != nil {
		return nil, fmt.Errorf("demoidp: encoding metadata: %w", err)
	}
	return buf, nil
}

// serviceNamePattern keeps service names usable as store keys and URL path
// segments (/login/{name}).
var serviceNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)

// RegisterServiceProvider tells the IdP about a service provider (its entity
// ID and ACS URL), from its metadata. Registering the same name again
// replaces the metadata. The service provider also gets an IdP-initiated
// login link, {BaseURL}/login/{name}.
func (i *IdP) RegisterServiceProvider(name string, spMetadataXML []byte) error {
	if !serviceNamePattern.MatchString(name) {
		return fmt.Errorf("demoidp: invalid service provider name %q: use letters, digits, '.', '_' and '-'", name)
	}
	// samlidp has no Go API to add a service; its PUT handler parses and
	// validates the metadata and registers it with the IdP.
	r := httptest.NewRequest(http.MethodPut, "/services/"+name, bytes.NewReader(spMetadataXML))
	r.SetPathValue("id", name)
	w := httptest.NewRecorder()
	i.server.HandlePutService(w, r)
	if w.Code != http.StatusNoContent {
		return fmt.Errorf("demoidp: service provider %q: metadata refused (HTTP %d)", name, w.Code)
	}
	entityID, err := i.serviceEntityID(name)
	if err != nil {
		return err
	}
	shortcut := samlidp.Shortcut{Name: name, ServiceProviderID: entityID}
	if err := i.server.Store.Put("/shortcuts/"+name, &shortcut); err != nil {
		return fmt.Errorf("demoidp: storing login link for %q: %w", name, err)
	}
	return nil
}

// serviceEntityID returns the entity ID of the service provider registered
// under name.
func (i *IdP) serviceEntityID(name string) (string, error) {
	var svc samlidp.Service
	if err := i.server.Store.Get("/services/"+name, &svc); err != nil {
		if errors.Is(err, samlidp.ErrNotFound) {
			return "", fmt.Errorf("demoidp: no service provider registered as %q", name)
		}
		return "", fmt.Errorf("demoidp: reading service provider %q: %w", name, err)
	}
	return svc.Metadata.EntityID, nil
}

// storeUser puts u into samlidp's user store through its PUT handler, so
// that the password is hashed and stored exactly as samlidp expects.
func (i *IdP) storeUser(u User) error {
	name := normalizeEmail(u.Email)
	body, err := json.Marshal(samlidp.User{
		Name:              name,
		PlaintextPassword: &u.Password,
		Groups:            u.Groups,
		Email:             name,
		CommonName:        u.DisplayName,
		Surname:           u.FamilyName,
		GivenName:         u.GivenName,
	})
	if err != nil {
		return fmt.Errorf("demoidp: encoding user %s: %w", name, err)
	}
	r := httptest.NewRequest(http.MethodPut, "/users/"+url.PathEscape(name), bytes.NewReader(body))
	r.SetPathValue("id", name)
	w := httptest.NewRecorder()
	i.server.HandlePutUser(w, r)
	if w.Code != http.StatusNoContent {
		// bcrypt refuses passwords longer than 72 bytes.
		return fmt.Errorf("demoidp: user %s: cannot store password (HTTP %d; at most 72 bytes)", name, w.Code)
	}
	return nil
}

func parseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("demoidp: BaseURL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("demoidp: BaseURL %q must be an absolute http(s) URL", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("demoidp: BaseURL %q must not have user info, query or fragment", raw)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

func normalizeEmail(email string) string {
	return strings.ToLower(strings.TrimSpace(email))
}

// normalizeUsers validates users and returns them by normalized email, with
// defaults filled in.
// objectIDSpace is the namespace of derived object IDs (a random UUID,
// fixed for good: changing it would change every demo user's ID).
const objectIDSpace = "6d1f3c2a-8b1e-4f0e-9d55-2f7c1b9a4e10"

// derivedObjectID gives a user without a configured ObjectID the same ID
// on every start, as a real IdP's directory does: a gateway that has seen
// the user before links sign-ins by this ID and refuses one that changed.
func derivedObjectID(email string) string {
	return uuid.NewSHA1(uuid.MustParse(objectIDSpace), []byte(email)).String()
}

func normalizeUsers(users []User) (map[string]User, error) {
	if len(users) == 0 {
		return nil, errors.New("demoidp: no users configured")
	}
	byEmail := make(map[string]User, len(users))
	objectIDs := make(map[string]bool, len(users))
	for n, u := range users {
		email := normalizeEmail(u.Email)
		addr, err := mail.ParseAddress(email)
		if err != nil || addr.Address != email || strings.ContainsAny(email, "/?#%") {
			return nil, fmt.Errorf("demoidp: user %d: invalid email %q", n, u.Email)
		}
		if _, dup := byEmail[email]; dup {
			return nil, fmt.Errorf("demoidp: user %s configured twice", email)
		}
		if u.Password == "" {
			return nil, fmt.Errorf("demoidp: user %s has no password", email)
		}
		u.Email = email
		u.DisplayName = strings.TrimSpace(u.DisplayName)
		if u.DisplayName == "" {
			u.DisplayName = strings.TrimSpace(u.GivenName + " " + u.FamilyName)
		}
		if u.ObjectID == "" {
			u.ObjectID = derivedObjectID(email)
		}
		if objectIDs[u.ObjectID] {
			return nil, fmt.Errorf("demoidp: user %s: ObjectID %q is used twice", email, u.ObjectID)
		}
		objectIDs[u.ObjectID] = true
		groups := make([]string, 0, len(u.Groups))
		for _, g := range u.Groups {
			if g = strings.TrimSpace(g); g != "" {
				groups = append(groups, g)
			}
		}
		u.Groups = groups
		byEmail[email] = u
	}
	return byEmail, nil
}

// disableAdminAPI replaces samlidp's unauthenticated administrative
// endpoints: anyone who can reach the IdP could otherwise add users.
func disableAdminAPI(http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "the administrative API of the demo IdP is disabled", http.StatusForbidden)
	})
}

// maxLoginFormBytes bounds the login/SSO form bodies; an HTTP-POST
// AuthnRequest is a few kilobytes.
const maxLoginFormBytes = 1 << 20

// Cookie names: samlidp's session cookie is "session", a name the
// application behind the gateway, or the gateway itself, may well use too.
// Cookies are not scoped by port, so in a demo where everything runs on
// 127.0.0.1 the IdP would overwrite theirs, so it is renamed on the way out
// and back on the way in.
const (
	samlidpCookieName = "session"
	sessionCookieName = "demoidp_session"
)

// frontDoor adapts requests and responses between browsers and samlidp.
func frontDoor(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Handlers must not modify the request they are given.
		r = r.Clone(r.Context())
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxLoginFormBytes)
			if err := r.ParseForm(); err != nil {
				http.Error(w, "invalid form", http.StatusBadRequest)
				return
			}
			// Let users type their email in any case: samlidp looks the
			// posted "user" up verbatim, and the store holds normalized
			// emails. samlidp parses the form again later, a no-op.
			if r.PostForm.Has("user") {
				user := normalizeEmail(r.PostForm.Get("user"))
				r.PostForm.Set("user", user)
				r.Form.Set("user", user)
			}
		}
		cookies := r.Cookies()
		r.Header.Del("Cookie")
		for _, c := range cookies {
			switch c.Name {
			case samlidpCookieName:
				continue // someone else's cookie for this host
			case sessionCookieName:
				c.Name = samlidpCookieName
			}
			r.AddCookie(c)
		}
		cw := &cookieRenamer{ResponseWriter: w}
		next.ServeHTTP(cw, r)
		cw.rename() // if next wrote nothing, the headers are still unsent
	})
}

// cookieRenamer renames samlidp's session cookie in Set-Cookie headers
// before they are sent.
type cookieRenamer struct {
	http.ResponseWriter
	renamed bool
}

func (c *cookieRenamer) rename() {
	if c.renamed {
		return
	}
	c.renamed = true
	setCookies := c.Header()["Set-Cookie"]
	for n, v := range setCookies {
		if strings.HasPrefix(v, samlidpCookieName+"=") {
			setCookies[n] = sessionCookieName + strings.TrimPrefix(v, samlidpCookieName)
		}
	}
}

func (c *cookieRenamer) WriteHeader(code int) {
	c.rename()
	c.ResponseWriter.WriteHeader(code)
}

func (c *cookieRenamer) Write(b []byte) (int, error) {
	c.rename()
	return c.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (c *cookieRenamer) Unwrap() http.ResponseWriter { return c.ResponseWriter }
