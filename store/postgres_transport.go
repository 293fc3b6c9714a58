package store

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// CheckPostgresTransport parses dsn as OpenPostgres will (libpq's PG*
// variables included) and refuses a DSN that reaches a host over the
// network without a verified certificate, unless insecure is set. pgx's
// default, like libpq's, is sslmode=prefer: TLS without checking the
// certificate, and plaintext if the server (or a machine in the middle)
// declines TLS, which exposes the password exchange (md5 is replayable
// material), every session and every SCIM write. Unix sockets and
// loopback addresses never leave the machine. It returns the hosts tried
// (host:port, a socket as its directory) and the weakest sslmode among
// them, for the log. The refusal names the host, never the DSN; the
// caller names its way to allow it.
// ErrInsecureTransport is CheckPostgresTransport's refusal.
var ErrInsecureTransport = errors.New("database connection not verified")

func CheckPostgresTransport(dsn string, insecure bool) (hosts []string, mode string, err error) {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		// pgx's message quotes the DSN, masked on a best-effort basis only.
		return nil, "", fmt.Errorf("the dsn does not parse (it is not shown, as it may hold a password)")
	}
	return checkTransport(cfg, insecure)
}

func checkTransport(cfg *pgconn.Config, insecure bool) (hosts []string, mode string, err error) {
	type attempt struct {
		host string
		port uint16
		tls  *tls.Config
	}
	attempts := []attempt{{cfg.Host, cfg.Port, cfg.TLSConfig}}
	for _, f := range cfg.Fallbacks {
		attempts = append(attempts, attempt{f.Host, f.Port, f.TLSConfig})
	}
	// pgx expands sslmode into one attempt per host and TLS setting
	// (prefer: TLS, then plaintext); a host is as weak as its weakest.
	weakest := map[string]tlsLevel{}
	var order []string
	for _, a := range attempts {
		addr := a.host
		if !strings.HasPrefix(a.host, "/") {
			addr = net.JoinHostPort(a.host, strconv.Itoa(int(a.port)))
		}
		lvl := levelOf(a.tls)
		if prev, ok := weakest[addr]; !ok || lvl < prev {
			if !ok {
				order = append(order, addr)
			}
			weakest[addr] = lvl
		}
	}
	overall := tlsVerifyFull
	for _, addr := range order {
		lvl := weakest[addr]
		overall = min(overall, lvl)
		if lvl >= tlsVerifyCA || insecure || onThisMachine(addr) {
			continue
		}
		return nil, "", fmt.Errorf("%w: host %s is reached over the network with %s: set sslmode=verify-full (or verify-ca) and sslrootcert in the dsn, or allow it for a network you trust", ErrInsecureTransport, addr, lvl.describe())
	}
	return order, overall.String(), nil
}

type tlsLevel int

const (
	tlsPlaintext  tlsLevel = iota // sslmode disable, or the fallback of allow and prefer
	tlsUnverified                 // require (and the first try of prefer): TLS, any certificate
	tlsVerifyCA                   // the chain is checked, not the host name
	tlsVerifyFull                 // the chain and the host name
)

// levelOf reads what pgx made of sslmode (see pgconn's configTLS).
func levelOf(c *tls.Config) tlsLevel {
	switch {
	case c == nil:
		return tlsPlaintext
	case !c.InsecureSkipVerify:
		return tlsVerifyFull
	case c.VerifyPeerCertificate != nil:
		return tlsVerifyCA
	}
	return tlsUnverified
}

func (l tlsLevel) String() string {
	return [...]string{"disable, allow or prefer (plaintext possible)", "require (no certificate check)", "verify-ca", "verify-full"}[l]
}

func (l tlsLevel) describe() string {
	if l == tlsPlaintext {
		return "plaintext possible (sslmode disable, allow or prefer, the default)"
	}
	return "TLS without a certificate check (sslmode require)"
}

// onThisMachine says whether addr (host:port or a socket directory) is a
// unix socket or a loopback address.
func onThisMachine(addr string) bool {
	if strings.HasPrefix(addr, "/") {
		return true
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	// ASCII only: Unicode folding would take "localhoſt" for localhost
	// (a multi-byte rune makes the lengths differ).
	if len(host) == len("localhost") && strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
