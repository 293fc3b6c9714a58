package orgs

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crewjam/saml"
)

// idpMetadata generates the metadata document of a real crewjam IdP.
func idpMetadata(t *testing.T) (string, testIdP) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	cert := newCert(t, key, time.Now().Add(-time.Hour), time.Now().Add(365*24*time.Hour))
	mdURL, _ := url.Parse("https://idp.example.org/saml/metadata")
	ssoURL, _ := url.Parse("https://idp.example.org/saml/sso")
	idp := &saml.IdentityProvider{Key: key, Signer: key, Certificate: cert, MetadataURL: *mdURL, SSOURL: *ssoURL}
	b, err := xml.MarshalIndent(idp.Metadata(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return xml.Header + string(b), testIdP{entityID: mdURL.String(), ssoURL: ssoURL.String(), cert: cert}
}

// TestBadInputChangesNothing sends every kind of invalid input through the
// admin API and checks the refusal (status, field) and that the store is
// exactly as before.
func TestBadInputChangesNothing(t *testing.T) {
	e := newEnv(t)
	e.readyOrg("acme", "acme.com")
	e.must(http.StatusOK, "POST", "/sso/orgs/acme/activate", nil)

	now := time.Now()
	good := newCertPEM(t, ecKey(t), now.Add(-time.Hour), now.Add(time.Hour))
	expired := newCertPEM(t, ecKey(t), now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	weakKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	weak := newCertPEM(t, weakKey, now.Add(-time.Hour), now.Add(time.Hour))
	mdDoc, _ := idpMetadata(t)

	idp := func(entityID, ssoURL string, certs ...string) map[string]any {
		return map[string]any{"entity_id": entityID, "sso_url": ssoURL, "certificates": certs}
	}
	const sso = "https://idp.example.org/sso"

	cases := []struct {
		name, method, path string
		body               any
		status             int
		field, contains    string
	}{
		// Organizations.
		{"upper-case slug", "POST", "/sso/orgs", map[string]string{"id": "Acme2", "name": "A", "owner_email": "a@b.com"}, 400, "id", ""},
		{"one-char slug", "POST", "/sso/orgs", map[string]string{"id": "a", "name": "A", "owner_email": "a@b.com"}, 400, "id", ""},
		{"underscore slug", "POST", "/sso/orgs", map[string]string{"id": "acme_2", "name": "A", "owner_email": "a@b.com"}, 400, "id", ""},
		{"long slug", "POST", "/sso/orgs", map[string]string{"id": strings.Repeat("a", 41), "name": "A", "owner_email": "a@b.com"}, 400, "id", ""},
		{"slash slug", "POST", "/sso/orgs", map[string]string{"id": "a/b", "name": "A", "owner_email": "a@b.com"}, 400, "id", ""},
		{"duplicate org", "POST", "/sso/orgs", map[string]string{"id": "acme", "name": "A", "owner_email": "a@b.com"}, 409, "id", "already exists"},
		{"no name", "POST", "/sso/orgs", map[string]string{"id": "beta", "name": "  ", "owner_email": "a@b.com"}, 400, "name", "required"},
		{"control char name", "POST", "/sso/orgs", map[string]string{"id": "beta", "name": "a\x00b", "owner_email": "a@b.com"}, 400, "name", ""},
		{"long name", "POST", "/sso/orgs", map[string]string{"id": "beta", "name": strings.Repeat("n", 201), "owner_email": "a@b.com"}, 400, "name", ""},
		{"bad email", "POST", "/sso/orgs", map[string]string{"id": "beta", "name": "B", "owner_email": "not-an-email"}, 400, "owner_email", ""},
		{"email with name", "POST", "/sso/orgs", map[string]string{"id": "beta", "name": "B", "owner_email": "Bob <bob@b.com>"}, 400, "owner_email", ""},
		{"no email", "POST", "/sso/orgs", map[string]string{"id": "beta", "name": "B"}, 400, "owner_email", ""},
		{"blank rename", "PATCH", "/sso/orgs/acme", map[string]string{"name": ""}, 400, "name", ""},

		// Domains.
		{"public suffix", "POST", "/sso/orgs/acme/domains", map[string]string{"name": "com"}, 400, "name", ""},
		{"public suffix 2 labels", "POST", "/sso/orgs/acme/domains", map[string]string{"name": "co.uk"}, 400, "name", "public suffix"},
		{"private public suffix", "POST", "/sso/orgs/acme/domains", map[string]string{"name": "github.io"}, 400, "name", "public suffix"},
		{"IPv4", "POST", "/sso/orgs/acme/domains", map[string]string{"name": "192.0.2.1"}, 400, "name", "IP address"},
		{"IPv6", "POST", "/sso/orgs/acme/domains", map[string]string{"name": "[2001:db8::1]"}, 400, "name", "IP address"},
		{"single label", "POST", "/sso/orgs/acme/domains", map[string]string{"name": "localhost"}, 400, "name", "single-label"},
		{"space", "POST", "/sso/orgs/acme/domains", map[string]string{"name": "ac me.com"}, 400, "name", ""},
		{"underscore", "POST", "/sso/orgs/acme/domains", map[string]string{"name": "_dmarc.acme.org"}, 400, "name", ""},
		{"empty label", "POST", "/sso/orgs/acme/domains", map[string]string{"name": "acme..org"}, 400, "name", ""},
		{"leading hyphen", "POST", "/sso/orgs/acme/domains", map[string]string{"name": "-acme.org"}, 400, "name", ""},
		{"long label", "POST", "/sso/orgs/acme/domains", map[string]string{"name": strings.Repeat("a", 64) + ".org"}, 400, "name", ""},
		{"numeric tld", "POST", "/sso/orgs/acme/domains", map[string]string{"name": "acme.123"}, 400, "name", ""},
		{"email", "POST", "/sso/orgs/acme/domains", map[string]string{"name": "it@acme.org"}, 400, "name", "email"},
		{"url", "POST", "/sso/orgs/acme/domains", map[string]string{"name": "https://acme.org/"}, 400, "name", "URL"},
		{"empty domain", "POST", "/sso/orgs/acme/domains", map[string]string{"name": ""}, 400, "name", "required"},
		{"domain again", "POST", "/sso/orgs/acme/domains", map[string]string{"name": "ACME.com"}, 409, "name", "already added"},

		// IdP settings.
		{"http SSO URL", "PUT", "/sso/orgs/acme/idp", idp("urn:idp", "http://idp.example.org/sso", good), 400, "sso_url", "https"},
		{"relative SSO URL", "PUT", "/sso/orgs/acme/idp", idp("urn:idp", "/sso", good), 400, "sso_url", ""},
		{"ftp SSO URL", "PUT", "/sso/orgs/acme/idp", idp("urn:idp", "ftp://idp.example.org/sso", good), 400, "sso_url", ""},
		{"javascript SSO URL", "PUT", "/sso/orgs/acme/idp", idp("urn:idp", "javascript:alert(1)", good), 400, "sso_url", ""},
		{"SSO URL with credentials", "PUT", "/sso/orgs/acme/idp", idp("urn:idp", "https://u:p@idp.example.org/sso", good), 400, "sso_url", ""},
		{"no SSO URL", "PUT", "/sso/orgs/acme/idp", idp("urn:idp", "", good), 400, "sso_url", ""},
		{"no entity ID", "PUT", "/sso/orgs/acme/idp", idp(" ", sso, good), 400, "entity_id", ""},
		{"entity ID with space", "PUT", "/sso/orgs/acme/idp", idp("urn:my idp", sso, good), 400, "entity_id", ""},
		{"no certificate", "PUT", "/sso/orgs/acme/idp", idp("urn:idp", sso), 400, "certificates", ""},
		{"expired certificate", "PUT", "/sso/orgs/acme/idp", idp("urn:idp", sso, good, expired), 400, "certificates", "expired"},
		{"RSA-1024 certificate", "PUT", "/sso/orgs/acme/idp", idp("urn:idp", sso, weak), 400, "certificates", "1024 bits"},
		{"garbage PEM", "PUT", "/sso/orgs/acme/idp", idp("urn:idp", sso, "not a certificate"), 400, "certificates", ""},
		{"broken PEM body", "PUT", "/sso/orgs/acme/idp", idp("urn:idp", sso, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 400, "certificates", ""},
		{"truncated PEM", "PUT", "/sso/orgs/acme/idp", idp("urn:idp", sso, good[:len(good)-30]), 400, "certificates", ""},
		{"trailing garbage", "PUT", "/sso/orgs/acme/idp", idp("urn:idp", sso, good+"junk"), 400, "certificates", ""},
		{"metadata and fields", "PUT", "/sso/orgs/acme/idp", map[string]any{"metadata_xml": mdDoc, "entity_id": "urn:idp"}, 400, "metadata_xml", "not both"},
		{"metadata garbage", "PUT", "/sso/orgs/acme/idp", map[string]any{"metadata_xml": "<not metadata"}, 400, "metadata_xml", ""},
		{"metadata DOCTYPE", "PUT", "/sso/orgs/acme/idp", map[string]any{"metadata_xml": `<!DOCTYPE x [<!ENTITY e "x">]>` + strings.TrimPrefix(mdDoc, xml.Header)}, 400, "metadata_xml", "DOCTYPE"},
		{"SP metadata", "PUT", "/sso/orgs/acme/idp", map[string]any{"metadata_xml": `<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://sp"><SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"/></EntityDescriptor>`}, 400, "metadata_xml", "no SAML 2.0 identity provider"},
		{"metadata with expired cert", "PUT", "/sso/orgs/acme/idp", map[string]any{"metadata_xml": metadataWithCert(t, mdDoc, expired)}, 400, "metadata_xml", "expired"},

		// Admin group.
		{"no group ID", "PUT", "/sso/orgs/acme/admin-group", map[string]string{"name": "Admins", "id": " "}, 400, "id", "required"},
		{"no group name", "PUT", "/sso/orgs/acme/admin-group", map[string]string{"id": "g1"}, 400, "name", "required"},
		{"long group name", "PUT", "/sso/orgs/acme/admin-group", map[string]string{"name": strings.Repeat("g", 257), "id": "g1"}, 400, "name", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.snapshot()
			r := e.call(c.method, c.path, c.body)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.raw)
			}
			o := r.object(t)
			if f, _ := o["field"].(string); f != c.field {
				t.Errorf("field = %q, want %q (%s)", f, c.field, r.raw)
			}
			if msg, _ := o["error"].(string); msg == "" || !strings.Contains(msg, c.contains) {
				t.Errorf("error = %q, want it to mention %q", msg, c.contains)
			}
			if after := e.snapshot(); after != before {
				t.Errorf("refused request changed the store:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// metadataWithCert replaces the signing certificate of a metadata document.
func metadataWithCert(t *testing.T, doc, certPEM string) string {
	t.Helper()
	ed, err := parseIdPMetadata([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	c := storedCerts([]string{certPEM})[0]
	for i := range ed.IDPSSODescriptors[0].KeyDescriptors {
		ed.IDPSSODescriptors[0].KeyDescriptors[i].KeyInfo.X509Data.X509Certificates[0].Data = base64.StdEncoding.EncodeToString(c.Raw)
	}
	b, err := xml.Marshal(ed)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestNormalizeDomain(t *testing.T) {
	ok := map[string]string{
		"example.com":           "example.com",
		"  Example.COM.  ":      "example.com",
		"mail.corp.example.com": "mail.corp.example.com",
		"bücher.example":        "xn--bcher-kva.example",
		"XN--BCHER-KVA.example": "xn--bcher-kva.example",
		"ｅｘａｍｐｌｅ．com":           "example.com", // full-width letters and dot
		"acme.co.uk":            "acme.co.uk",
		"team.github.io":        "team.github.io",
		"corp.internal":         "corp.internal", // not on the list, not a suffix itself
	}
	for in, want := range ok {
		got, err := NormalizeDomain(in)
		if err != nil || got != want {
			t.Errorf("NormalizeDomain(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := []string{
		"", ".", "..", "com", "uk", "co.uk", "github.io", "localhost", "192.0.2.1", "::1", "[::1]",
		"a..b.com", "-a.com", "a-.com", "a_b.com", "a b.com", "a.com..", "*.example.com",
		"example.123", strings.Repeat("a.", 127) + "com", "xn--zz.com", "@example.com", "example.com/x",
	}
	for _, in := range bad {
		got, err := NormalizeDomain(in)
		var e *Error
		if !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Field != "name" {
			t.Errorf("NormalizeDomain(%q) = %q, %v; want a 400 on field name", in, got, err)
		}
	}
}

func TestCertificates(t *testing.T) {
	now := time.Now()
	k1, k2 := ecKey(t), ecKey(t)
	c1 := newCertPEM(t, k1, now.Add(-time.Hour), now.Add(time.Hour))
	// Announced for rollover: valid only from tomorrow, accepted.
	c2 := newCertPEM(t, k2, now.Add(24*time.Hour), now.Add(48*time.Hour))
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	c3 := newCertPEM(t, rsaKey, now.Add(-time.Hour), now.Add(time.Hour))

	// Two certificates in one PEM input, one repeated on its own, CRLF line
	// ends and surrounding space.
	got, err := parseCertificates("certificates", []string{"\n" + c1 + c2 + "\n", strings.ReplaceAll(c1, "\n", "\r\n"), c3}, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0] != c1 || got[1] != c2 || got[2] != c3 {
		t.Errorf("got %d certificates: %q", len(got), got)
	}

	many := make([]string, maxCertificates+1)
	for i := range many {
		many[i] = newCertPEM(t, k1, now.Add(-time.Hour), now.Add(time.Hour))
	}
	if _, err := parseCertificates("certificates", many, now); err == nil {
		t.Errorf("%d certificates accepted", len(many))
	}
}

func TestSSOURL(t *testing.T) {
	for _, u := range []string{
		"https://idp.example.org/sso", "HTTPS://idp.example.org:8443/app/sso?x=1",
		"http://localhost:8081/sso", "http://127.0.0.1/sso", "http://127.1.2.3:9/sso", "http://[::1]:8081/sso",
	} {
		if _, err := validateSSOURL("sso_url", u); err != nil {
			t.Errorf("%q refused: %v", u, err)
		}
	}
	for _, u := range []string{
		"http://idp.example.org/sso", "http://10.0.0.1/sso", "http://[::2]/sso", "http://localhost.evil.com/sso",
		"http://127.0.0.1.nip.io/sso", "https:///sso", "https://idp.example.org/sso#frag", "idp.example.org/sso",
	} {
		if _, err := validateSSOURL("sso_url", u); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
}

// TestReAddedDomainNeedsNewRecord: removing and adding a domain again
// issues a new token, so the record published for the old claim proves
// nothing.
func TestReAddedDomainNeedsNewRecord(t *testing.T) {
	e := newEnv(t)
	e.createOrg("acme")
	first := e.must(http.StatusCreated, "POST", "/sso/orgs/acme/domains", map[string]string{"name": "acme.com"}).object(t)
	e.dns.set("acme.com", []string{TXTPrefix + first["token"].(string)})
	e.must(http.StatusNoContent, "DELETE", "/sso/orgs/acme/domains/acme.com", nil)
	second := e.must(http.StatusCreated, "POST", "/sso/orgs/acme/domains", map[string]string{"name": "acme.com"}).object(t)
	if first["token"] == second["token"] {
		t.Fatal("a re-added domain kept its token")
	}
	// The old record proves nothing about the new claim.
	e.must(http.StatusConflict, "POST", "/sso/orgs/acme/domains/acme.com/verify", nil)
}

// TestConcurrentVerificationOneWinner: organizations racing to verify the
// same domain end with exactly one owner.
func TestConcurrentVerificationOneWinner(t *testing.T) {
	e := newEnv(t)
	const n = 8
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("org-%d", i)
		e.createOrg(ids[i])
		if _, err := e.svc.AddDomain("test", ids[i], "contested.com"); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	results := make([]error, n)
	for i, id := range ids {
		wg.Go(func() {
			_, results[i] = e.svc.VerifyDomain(t.Context(), "test", id, "contested.com", true)
		})
	}
	wg.Wait()
	winners := 0
	for i, err := range results {
		if err == nil {
			winners++
			if owner, _ := e.store.OrgForDomain("contested.com"); owner != ids[i] {
				t.Errorf("winner %s, but the domain routes to %q", ids[i], owner)
			}
			continue
		}
		if e, ok := AsError(err); !ok || e.Status != http.StatusConflict {
			t.Errorf("%s: %v, want a 409", ids[i], err)
		}
	}
	if winners != 1 {
		t.Errorf("%d organizations verified the domain, want 1", winners)
	}
}

// Owner and local-account addresses are one addr-spec, stored in the
// form they are looked up in (ASCII case folded, A-label domain).
func TestNormalizeEmailIsOneAddrSpec(t *testing.T) {
	for in, want := range map[string]string{
		" Alice@Example.COM ":  "alice@example.com",
		"jorg@Bücher.de":       "jorg@xn--bcher-kva.de",
		"\u212Aim@example.com": "\u212Aim@example.com", // never folded onto kim@
	} {
		if got, err := normalizeEmail("email", in); err != nil || got != want {
			t.Errorf("normalizeEmail(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{`"a@b"@example.com`, "a@evil.test@example.com", "a@example.com, b@example.com", "Alice <a@example.com>", "a(x)@example.com"} {
		if got, err := normalizeEmail("email", in); err == nil {
			t.Errorf("normalizeEmail(%q) = %q, want an error", in, got)
		}
	}
}
