package caddymodule_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ssogate/ssogate/examples/demo"
)

// interopRequired makes a missing non-Go IdP a failure rather than a skip;
// .ci/run sets it after installing them.
const interopRequired = "SSOGATE_INTEROP_TESTS"

// pysaml2Python finds a Python that has pysaml2 (Debian's python3-pysaml2
// lives in the system Python, which a pyenv or venv on PATH may hide),
// with xmlsec1, which pysaml2 signs with.
func pysaml2Python(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("xmlsec1"); err == nil {
		for _, py := range []string{"/usr/bin/python3", "python3"} {
			if exec.Command(py, "-c", "import saml2.server").Run() == nil {
				return py
			}
		}
	}
	msg := "pysaml2 and xmlsec1 are not installed (apt-get install python3-pysaml2 xmlsec1)"
	if os.Getenv(interopRequired) == "required" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// writeKeyPair writes a fresh RSA key and self-signed certificate as PEM.
func writeKeyPair(t *testing.T, dir string) (keyPath, certPath string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pysaml2 test IdP"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyPath, certPath = filepath.Join(dir, "idp.key"), filepath.Join(dir, "idp.crt")
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return keyPath, certPath
}

// TestPysaml2IdPDefaults: a pysaml2 IdP with its defaults (transient
// NameID, urn:oid attribute names, isMemberOf groups, no objectidentifier)
// imports the gateway's SP metadata, is imported by its metadata, and
// signs Alice in twice through the real gateway. The second sign-in was
// refused while the transient NameID counted as her stable ID.
func TestPysaml2IdPDefaults(t *testing.T) {
	py := pysaml2Python(t)
	ctx := context.Background()
	dir := t.TempDir()
	b := newBrowser(t)

	spMetadata := b.get(env.GatewayURL + "/sso/saml/" + demo.OrgID + "/metadata")
	if spMetadata.status != http.StatusOK {
		t.Fatalf("SP metadata: %d", spMetadata.status)
	}
	spPath := filepath.Join(dir, "sp.xml")
	if err := os.WriteFile(spPath, []byte(spMetadata.body), 0o600); err != nil {
		t.Fatal(err)
	}
	keyPath, certPath := writeKeyPair(t, dir)
	addr := freeAddr()
	port := addr[strings.LastIndexByte(addr, ':')+1:]
	base := "http://" + addr
	cmd := exec.Command(py, filepath.Join("..", "examples", "pysaml2idp", "idp.py"),
		"--port", port, "--base", base, "--sp-metadata", spPath, "--key", keyPath, "--cert", certPath,
		"--email", demo.AliceEmail, "--group", demo.AdminGroupName, "--group", "staff")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("pysaml2 IdP log:\n%s", stderr.String())
		}
	})
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && strings.TrimSpace(line) != "ready" {
			err = fmt.Errorf("printed %q", line)
		}
		ready <- err
		_, _ = io.Copy(io.Discard, stdout)
	}()
	// A generous bound: only a hung interpreter takes this long.
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("pysaml2 IdP did not start: %v\n%s", err, stderr.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("pysaml2 IdP not ready after 2 minutes\n%s", stderr.String())
	}

	idpMetadata := b.get(base + "/metadata")
	if idpMetadata.status != http.StatusOK {
		t.Fatalf("IdP metadata: %d\n%s", idpMetadata.status, idpMetadata.body)
	}
	orgURL := env.AdminURL + "/sso/orgs/" + demo.OrgID
	if out, err := env.Admin(ctx, http.MethodPut, orgURL+"/idp", map[string]any{"metadata_xml": idpMetadata.body}); err != nil {
		t.Fatalf("importing the pysaml2 IdP's metadata: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if _, err := env.Admin(ctx, http.MethodPut, orgURL+"/idp", map[string]any{
			"entity_id": env.IdP.EntityID(), "sso_url": env.IdP.SSOURL(), "certificates": []string{env.IdP.CertificatePEM()},
		}); err != nil {
			t.Errorf("restoring the demo IdP: %v", err)
		}
	})

	st := runningStore(t)
	alice, err := st.UserByUserName(demo.OrgID, demo.AliceEmail)
	if err != nil {
		t.Fatal(err)
	}
	// pysaml2 sends no stable ID, and a sign-in without one never takes
	// over a user held to one (as the demo IdP's sign-ins left Alice).
	unlinked(t, st, alice)
	for i := range 2 {
		b := newBrowser(t)
		form := b.post(env.GatewayURL+"/sso/login", map[string][]string{"email": {demo.AliceEmail}})
		if form.status != http.StatusSeeOther || !strings.HasPrefix(form.location, base+"/sso/redirect?") {
			t.Fatalf("sign-in %d: want a redirect to the pysaml2 IdP, got %d %q", i+1, form.status, form.location)
		}
		idpPage := b.get(form.location)
		if idpPage.status != http.StatusOK {
			t.Fatalf("sign-in %d: the IdP answered %d\n%s\n%s", i+1, idpPage.status, idpPage.body, stderr.String())
		}
		acs, fields := parseForm(t, idpPage.body)
		if fields.Get("SAMLResponse") == "" {
			t.Fatalf("sign-in %d: no SAMLResponse in\n%s", i+1, idpPage.body)
		}
		p := b.post(resolve(base, acs), fields)
		if p.status != http.StatusSeeOther {
			t.Fatalf("sign-in %d: the gateway answered %d\n%s", i+1, p.status, p.body)
		}
		h := signedIn(t, b)
		if h["X-Sso-Email"] != demo.AliceEmail || !strings.Contains(","+h["X-Sso-Groups"]+",", ","+demo.AdminGroupName+",") {
			t.Errorf("sign-in %d: upstream saw %v", i+1, h)
		}
	}
	// The transient NameIDs were neither stored nor compared.
	after, err := st.UserByUserName(demo.OrgID, demo.AliceEmail)
	if err != nil {
		t.Fatal(err)
	}
	if after.ExternalID != "" {
		t.Errorf("ExternalID = %q, want none: a transient NameID is no stable ID", after.ExternalID)
	}
}
