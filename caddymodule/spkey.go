package caddymodule

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/ssogate/ssogate/store"
)

// spKeyPair returns the gateway's SAML SP key and certificate, generating
// them on first use and keeping them in the store, so that every replica and
// every restart advertises the same key in its metadata. The key decrypts
// assertions an IdP chooses to encrypt; the certificate is self-signed, as
// is usual for SAML, where metadata pins the key itself.
func spKeyPair(st *store.Store) (crypto.Signer, *x509.Certificate, error) {
	raw, err := st.GetOrCreateSecret("saml-sp-keypair", generateSPKeyPair)
	if err != nil {
		return nil, nil, fmt.Errorf("SP key pair: %w", err)
	}
	var key crypto.Signer
	var cert *x509.Certificate
	for rest := raw; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch b.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("SP key: %w", err)
			}
			s, ok := k.(crypto.Signer)
			if !ok {
				return nil, nil, errors.New("SP key is not a signer")
			}
			key = s
		case "CERTIFICATE":
			if cert, err = x509.ParseCertificate(b.Bytes); err != nil {
				return nil, nil, fmt.Errorf("SP certificate: %w", err)
			}
		}
	}
	if key == nil || cert == nil {
		return nil, nil, errors.New("SP key pair in store is incomplete")
	}
	return key, cert, nil
}

func generateSPKeyPair() ([]byte, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "ssogate SAML service provider"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(20, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})
	out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	return out, nil
}
