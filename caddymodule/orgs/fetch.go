package orgs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Bounds on fetching an IdP's metadata URL.
const (
	metadataFetchTimeout = 10 * time.Second
	maxMetadataRedirects = 5
)

// FetchIdPMetadata downloads an IdP's metadata document from rawURL and
// returns the settings it holds (entity ID, HTTP-Redirect SSO URL, signing
// certificates as PEM, and MetadataURL), not yet validated: SetIdPContext
// validates them as it does typed-in fields.
//
// The URL must be https (plain http only to a loopback host, as for SSO
// URLs); redirects are followed only to https URLs, at most 5 of them. The
// whole fetch is bounded by 10 seconds and the body by the metadata size
// limit (1 MiB). Refusals are 400 *Errors on the field "metadata_url".
func (s *Service) FetchIdPMetadata(ctx context.Context, rawURL string) (IdPInput, error) {
	const field = "metadata_url"
	u, err := validateSSOURL(field, rawURL)
	if err != nil {
		return IdPInput{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, metadataFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return IdPInput{}, invalid(field, "%q is not a URL that can be fetched", u)
	}
	req.Header.Set("Accept", "application/samlmetadata+xml, application/xml, text/xml;q=0.9, */*;q=0.1")
	resp, err := s.metadataClient().Do(req)
	if err != nil {
		var redirErr redirectRefused
		switch {
		case errors.As(err, &redirErr):
			return IdPInput{}, invalid(field, "fetching %s: %s", u, redirErr.msg)
		case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
			return IdPInput{}, invalid(field, "fetching %s timed out after %s", u, metadataFetchTimeout)
		}
		return IdPInput{}, invalid(field, "fetching %s failed: %s", u, describeFetchError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return IdPInput{}, invalid(field, "fetching %s: the server answered %s", u, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadataLen+1))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			return IdPInput{}, invalid(field, "fetching %s timed out after %s", u, metadataFetchTimeout)
		}
		return IdPInput{}, invalid(field, "reading %s failed: %s", u, describeFetchError(err))
	}
	if len(body) > maxMetadataLen {
		return IdPInput{}, invalid(field, "the metadata at %s is too large (at most %d bytes)", u, maxMetadataLen)
	}
	in, err := idpFromMetadata(string(body))
	if err != nil {
		if e, ok := AsError(err); ok {
			return IdPInput{}, invalid(field, "the document at %s: %s", u, e.Message)
		}
		return IdPInput{}, err
	}
	in.MetadataURL = u
	return in, nil
}

// metadataClient is the Service's HTTPClient (or a default one) with the
// fetch's redirect policy and timeout applied to a copy.
func (s *Service) metadataClient() *http.Client {
	var c http.Client
	if s.HTTPClient != nil {
		c = *s.HTTPClient
	} else if !s.AllowPrivateMetadataHosts {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.Proxy = nil // a proxy would dial on our behalf, unchecked
		t.DialContext = (&net.Dialer{Timeout: metadataFetchTimeout, Control: refusePrivate}).DialContext
		c.Transport = t
	}
	c.Timeout = metadataFetchTimeout
	c.Jar = nil
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= maxMetadataRedirects {
			return redirectRefused{fmt.Sprintf("more than %d redirects", maxMetadataRedirects)}
		}
		if !strings.EqualFold(req.URL.Scheme, "https") {
			return redirectRefused{"redirected to " + redactURL(req.URL) + ", which is not https"}
		}
		return nil
	}
	return &c
}

// errPrivateAddress refuses a metadata fetch to a non-public address.
var errPrivateAddress = errors.New("refusing to connect to a loopback, private or link-local address (the operator can allow it with allow_private_metadata_urls)")

// refusePrivate is a net.Dialer Control function: it sees the address
// about to be connected to, after name resolution and for every redirect.
func refusePrivate(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("unexpected dial address %q", address)
	}
	ip = ip.Unmap()
	if !ip.IsGlobalUnicast() || ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast() ||
		netip.MustParsePrefix("100.64.0.0/10").Contains(ip) { // carrier-grade NAT, often internal
		return errPrivateAddress
	}
	return nil
}

// redirectRefused stops a redirect the fetch does not follow.
type redirectRefused struct{ msg string }

func (e redirectRefused) Error() string { return e.msg }

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// describeFetchError keeps the part of a client error that helps the admin
// (the innermost cause), without Go's "Get <url>:" wrapping.
func describeFetchError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}

// redactURL drops credentials, query and fragment from a URL before it is
// shown.
func redactURL(u *url.URL) string {
	c := *u
	c.User = nil
	c.RawQuery = ""
	c.Fragment = ""
	return c.String()
}
