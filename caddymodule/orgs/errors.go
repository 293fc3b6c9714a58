package orgs

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/ssogate/ssogate/store"
)

// Error is a refusal the caller can show to whoever asked: bad input, an
// unknown organization or domain, or a state that does not allow the
// operation. Status is the HTTP status that fits, so that every front end
// (admin API, configurator) maps errors the same way; anything that is not an
// *Error is an internal failure whose details belong in logs, not responses.
type Error struct {
	// Status is 400 (bad input), 404 (no such organization or domain) or
	// 409 (conflict with existing data, or not ready).
	Status int `json:"-"`
	// Field names the input field at fault, if one is.
	Field string `json:"field,omitempty"`
	// Message says what is wrong in words an operator or org admin can act
	// on. It never contains secrets.
	Message string `json:"error"`
	// Missing lists what an organization still needs before it can be
	// activated (only for activation refusals).
	Missing []string `json:"missing,omitempty"`
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	if len(e.Missing) > 0 {
		b.WriteString(" (missing: ")
		b.WriteString(strings.Join(e.Missing, ", "))
		b.WriteString(")")
	}
	return b.String()
}

// AsError returns err as an *Error if it is (or wraps) one.
func AsError(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

func invalid(field, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Field: field, Message: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) *Error {
	return &Error{Status: http.StatusNotFound, Message: fmt.Sprintf(format, args...)}
}

func conflict(format string, args ...any) *Error {
	return &Error{Status: http.StatusConflict, Message: fmt.Sprintf(format, args...)}
}

func conflictField(field, format string, args ...any) *Error {
	return &Error{Status: http.StatusConflict, Field: field, Message: fmt.Sprintf(format, args...)}
}

// orgErr turns a store error about organization id into an *Error where the
// caller can act on it, and wraps anything else as internal.
func orgErr(id string, err error, doing string) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound("organization %q not found", id)
	case errors.Is(err, store.ErrInvalid):
		return invalid("id", "invalid organization ID %q", id)
	}
	if e, ok := AsError(err); ok {
		return e
	}
	return fmt.Errorf("%s organization %q: %w", doing, id, err)
}
