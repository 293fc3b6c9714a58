package store

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// testCAFile writes a self-signed CA certificate, for sslrootcert (pgx
// reads it when the DSN is parsed).
func testCAFile(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A database reached over the network needs a verified certificate
// (sslmode verify-ca or verify-full) or the explicit insecure_plaintext;
// unix sockets and loopback addresses need neither. What pgx made of the
// DSN decides, so the default (prefer), libpq's environment and
// multi-host DSNs are judged as they will be used.
func TestPostgresTransportChecked(t *testing.T) {
	onceOnly(t)
	for _, v := range []string{"PGSSLMODE", "PGHOST", "PGPORT", "PGSSLROOTCERT", "PGSERVICE", "PGSERVICEFILE"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	ca := testCAFile(t)
	for _, c := range []struct {
		dsn     string
		ok      bool   // accepted without insecure_plaintext
		mode    string // the sslmode logged
		refuses string // the host named in the refusal
	}{
		{"postgres://gw:pw@db.example.com/sso", false, "", "db.example.com:5432"},
		{"postgres://gw:pw@db.example.com/sso?sslmode=prefer", false, "", "db.example.com:5432"},
		{"postgres://gw:pw@db.example.com/sso?sslmode=allow", false, "", "db.example.com:5432"},
		{"postgres://gw:pw@db.example.com/sso?sslmode=disable", false, "", "db.example.com:5432"},
		{"postgres://gw:pw@db.example.com/sso?sslmode=require", false, "", "db.example.com:5432"},
		{"host=10.0.0.5 port=6432 user=gw sslmode=require", false, "", "10.0.0.5:6432"},
		{"postgres://gw:pw@db.example.com/sso?sslmode=verify-full", true, "verify-full", ""},
		{"postgres://gw:pw@db.example.com/sso?sslmode=verify-ca&sslrootcert=" + ca, true, "verify-ca", ""},
		// libpq: require with a root certificate is verify-ca.
		{"postgres://gw:pw@db.example.com/sso?sslmode=require&sslrootcert=" + ca, true, "verify-ca", ""},
		// Every host of a multi-host DSN is judged.
		{"postgres://gw:pw@127.0.0.1,db.example.com/sso", false, "", "db.example.com:5432"},
		{"postgres://gw:pw@db1.example.com,db2.example.com/sso?sslmode=verify-full", true, "verify-full", ""},
		// On this machine: anything goes.
		{"postgres://gw:pw@127.0.0.1:5433/sso", true, "disable, allow or prefer (plaintext possible)", ""},
		{"postgres://gw:pw@localhost/sso?sslmode=disable", true, "disable, allow or prefer (plaintext possible)", ""},
		{"postgres://gw:pw@[::1]:5432/sso?sslmode=require", true, "require (no certificate check)", ""},
		{"host=/run/postgresql user=gw dbname=sso", true, "disable, allow or prefer (plaintext possible)", ""},
		{"postgres://gw:pw@127.0.0.2/sso", true, "disable, allow or prefer (plaintext possible)", ""},
		// Names that merely look local are not.
		{"postgres://gw:pw@localhost.example.com/sso", false, "", "localhost.example.com:5432"},
		{"postgres://gw:pw@127.0.0.1.nip.io/sso", false, "", "127.0.0.1.nip.io:5432"},
		{"host=localhoſt user=gw", false, "", "localhoſt:5432"},
		{"host=LocalHost user=gw", true, "disable, allow or prefer (plaintext possible)", ""},
	} {
		cfg, err := pgconn.ParseConfig(c.dsn)
		if err != nil {
			t.Fatalf("%s: %v", c.dsn, err)
		}
		_, mode, err := checkTransport(cfg, false)
		switch {
		case c.ok && err != nil:
			t.Errorf("%s: refused: %v", c.dsn, err)
		case c.ok && mode != c.mode:
			t.Errorf("%s: sslmode %q, want %q", c.dsn, mode, c.mode)
		case !c.ok && err == nil:
			t.Errorf("%s: accepted (sslmode %s)", c.dsn, mode)
		case !c.ok && (!errors.Is(err, ErrInsecureTransport) || !strings.Contains(err.Error(), "host "+c.refuses+" ") || !strings.Contains(err.Error(), "verify-full")):
			t.Errorf("%s: %v; want the host %s named and the way out", c.dsn, err, c.refuses)
		case !c.ok && strings.Contains(err.Error(), "pw"):
			t.Errorf("%s: the refusal shows the password: %v", c.dsn, err)
		}
		// The operator's explicit permission accepts everything.
		if hosts, _, err := checkTransport(cfg, true); err != nil || len(hosts) == 0 {
			t.Errorf("%s with insecure_plaintext: %v %v", c.dsn, hosts, err)
		}
	}
}

// A DSN that does not parse is refused without being shown.
func TestPostgresTransportUnparsable(t *testing.T) {
	onceOnly(t)
	const secret = "Sw0rdf1sh"
	_, _, err := CheckPostgresTransport("postgres://gw:"+secret+"@db.example.com:notaport/sso", true)
	if err == nil || strings.Contains(err.Error(), secret) || errors.Is(err, ErrInsecureTransport) {
		t.Fatalf("unparsable DSN: %v", err)
	}
}
