package demoidp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// certificateLifetime is how long a generated certificate is valid. Service
// providers built on crewjam check the IdP certificate's validity period.
const certificateLifetime = 365 * 24 * time.Hour

// signingKeyPair checks the configured key and certificate, generating what
// is missing.
func signingKeyPair(key crypto.Signer, cert *x509.Certificate) (crypto.Signer, *x509.Certificate, error) {
	if key == nil {
		if cert != nil {
			return nil, nil, errors.New("demoidp: Certificate given without its Key")
		}
		k, err := rsa.GenerateKey(rand.Reader, minRSABits)
		if err != nil {
			return nil, nil, fmt.Errorf("demoidp: generating key: %w", err)
		}
		key = k
	}
	switch pub := key.Public().(type) {
	case *rsa.PublicKey:
		if bits := pub.N.BitLen(); bits < minRSABits {
			return nil, nil, fmt.Errorf("demoidp: RSA key of %d bits is too small (at least %d)", bits, minRSABits)
		}
	case *ecdsa.PublicKey:
	default:
		return nil, nil, fmt.Errorf("demoidp: unsupported key type %T (RSA or ECDSA)", pub)
	}

	if cert == nil {
		var err error
		if cert, err = selfSignedCertificate(key); err != nil {
			return nil, nil, err
		}
	}
	certKey, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !certKey.Equal(key.Public()) {
		return nil, nil, errors.New("demoidp: Certificate is not for Key")
	}
	return key, cert, nil
}

func selfSignedCertificate(key crypto.Signer) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("demoidp: generating certificate serial: %w", err)
	}
	now := time.Now()
	template := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "ssogate demo IdP", Organization: []string{"ssogate demo"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certificateLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("demoidp: creating certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("demoidp: parsing generated certificate: %w", err)
	}
	return cert, nil
}
