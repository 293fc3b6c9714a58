package caddymodule

import (
	"crypto"
	"crypto/x509"

	"github.com/ssogate/ssogate/store"
)

// SPKeyPair lets the login benchmark validate responses with the gateway's
// own SP key, outside the gateway, for the raw validation rate.
func SPKeyPair(st *store.Store) (crypto.Signer, *x509.Certificate, error) { return spKeyPair(st) }
