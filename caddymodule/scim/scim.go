// Package scim serves SCIM 2.0 provisioning (RFC 7643/7644) per
// organization, so that the IdP keeps the gateway's users and groups
// current.
package scim

import (
	"net/http"

	"go.uber.org/zap"

	"github.com/ssogate/ssogate/store"
)

// Config configures the SCIM server.
type Config struct {
	Store *store.Store
	// BaseURL is the gateway's external URL and Prefix its route prefix;
	// an org's SCIM base URL is BaseURL + Prefix + "/scim/{org}/v2".
	BaseURL string
	Prefix  string
	// ClientIP returns the request's client address (Caddy's view, which
	// honours trusted proxies).
	ClientIP func(*http.Request) string
	Logger   *zap.Logger
}

// Server serves every organization's SCIM endpoints.
type Server struct {
	cfg Config
}

// New builds the server.
func New(cfg Config) (*Server, error) {
	return &Server{cfg: cfg}, nil
}

// ServeHTTP serves a request whose path starts with Prefix + "/scim/".
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/scim+json")
	w.WriteHeader(http.StatusNotImplemented)
	_, _ = w.Write([]byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"501","detail":"SCIM is not implemented yet"}`))
}
