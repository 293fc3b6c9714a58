package store

import (
	"errors"
	"net"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// pgConnectError is a failed connection attempt told without the DSN's
// user and database: pgx's own error starts with both, and the server's
// refusal may quote them. A URL DSN whose password holds an unescaped '/'
// puts the rest of the password into the database name, so neither may
// reach an error or a log line; the addresses and the causes are enough
// to act on.
type pgConnectError struct {
	msg    string
	causes []error // for errors.Is and errors.As; server errors are redacted copies
}

func (e *pgConnectError) Error() string   { return e.msg }
func (e *pgConnectError) Unwrap() []error { return e.causes }

// safeConnectError returns err with any pgx connection error in it
// replaced by a pgConnectError; other errors are returned as they are.
// The outer wrappers' text is dropped with it: pgx's and the pool's add
// nothing an operator needs.
func safeConnectError(err error) error {
	var ce *pgconn.ConnectError
	if err == nil || !errors.As(err, &ce) {
		return err
	}
	inner := ce.Unwrap()
	var b strings.Builder
	b.WriteString("connect to ")
	b.WriteString(pgAddresses(ce.Config))
	if inner != nil {
		b.WriteString(": ")
		b.WriteString(describeConnectCause(inner))
	}
	e := &pgConnectError{msg: b.String()}
	if pgErrs := redactedPgErrors(inner, nil); len(pgErrs) > 0 {
		e.causes = pgErrs
	} else if inner != nil {
		// No server answer inside: the rest (dial, TLS, timeouts) names
		// addresses, never the user or the database.
		e.causes = []error{inner}
	}
	return e
}

// pgAddresses lists the hosts a config tries, as host:port (a unix
// socket as its directory), without duplicates.
func pgAddresses(c *pgconn.Config) string {
	if c == nil {
		return "the database"
	}
	var out []string
	add := func(host string, port uint16) {
		a := host
		if !strings.HasPrefix(host, "/") {
			a = net.JoinHostPort(host, strconv.Itoa(int(port)))
		}
		for _, o := range out {
			if o == a {
				return
			}
		}
		out = append(out, a)
	}
	add(c.Host, c.Port)
	for _, f := range c.Fallbacks {
		add(f.Host, f.Port)
	}
	return strings.Join(out, ", ")
}

// describeConnectCause renders the tree under a ConnectError with every
// server error replaced by its redacted form. A wrapper whose text is not
// "<prefix><its cause's text>" cannot be rendered piecewise; it is shown
// whole unless a server error hides under it.
func describeConnectCause(err error) string {
	if pgErr, ok := err.(*pgconn.PgError); ok {
		return redactPgError(pgErr).Error()
	}
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		var parts []string
		for _, c := range u.Unwrap() {
			parts = append(parts, describeConnectCause(c))
		}
		return strings.Join(parts, "; ")
	case interface{ Unwrap() error }:
		c := u.Unwrap()
		if c == nil {
			break
		}
		msg, cs := err.Error(), c.Error()
		if strings.HasSuffix(msg, cs) {
			return msg[:len(msg)-len(cs)] + describeConnectCause(c)
		}
	}
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) {
		return "the server refused the connection (" + redactPgError(pgErr).Error() + ")"
	}
	return err.Error()
}

// redactedPgErrors collects redacted copies of the server errors in the
// tree under err.
func redactedPgErrors(err error, out []error) []error {
	if err == nil {
		return out
	}
	if pgErr, ok := err.(*pgconn.PgError); ok {
		return append(out, redactPgError(pgErr))
	}
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		for _, c := range u.Unwrap() {
			out = redactedPgErrors(c, out)
		}
	case interface{ Unwrap() error }:
		out = redactedPgErrors(u.Unwrap(), out)
	}
	return out
}

// redactPgError keeps what a connection refusal's SQLSTATE says and drops
// the server's message, which quotes the user or the database.
func redactPgError(e *pgconn.PgError) *pgconn.PgError {
	msg := "server error"
	switch e.Code {
	case "28P01":
		msg = "password authentication failed"
	case "28000":
		msg = "authorization rejected (the role, or no pg_hba.conf entry for this client)"
	case "3D000":
		msg = "the database does not exist"
	case "42501":
		msg = "permission denied (no CONNECT privilege on the database)"
	case "53300":
		msg = "too many connections"
	case "57P03":
		msg = "the server is starting up or shutting down"
	case "08P01":
		msg = "protocol violation"
	}
	return &pgconn.PgError{Severity: e.Severity, SeverityUnlocalized: e.SeverityUnlocalized, Code: e.Code, Message: msg}
}
