// Package orgcli is the `org` command of ssogate (and of any Caddy built
// with the module): it manages organizations through the admin API of the
// running server.
package orgcli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// maxFileSize bounds the certificate and metadata files the org commands
// read; the admin API refuses larger request bodies anyway.
const maxFileSize = 1 << 20

// Command is the `org` command. The ssogate module's package registers it
// (caddycmd.RegisterCommand), so that any Caddy built with the module, by
// xcaddy as well as cmd/ssogate, has it.
func Command() caddycmd.Command {
	return caddycmd.Command{
		Name:  "org",
		Usage: "<command> [--address <interface>] [--config <path> [--adapter <name>]]",
		Short: "Manages organizations (tenants) of the running gateway",
		// The help names the binary as it was invoked: `ssogate org` for
		// cmd/ssogate, `caddy org` for an xcaddy build. Caddy names its
		// root command the same way.
		Long:      strings.ReplaceAll(longHelp, "BIN", InvokedName()),
		CobraFunc: orgCommands,
	}
}

// InvokedName is the name the binary was run as: `ssogate`, or `caddy` for
// a Caddy built with xcaddy.
func InvokedName() string {
	if len(os.Args) == 0 {
		return "caddy"
	}
	return filepath.Base(os.Args[0])
}

const longHelp = `
Creates and configures organizations through the admin API of the running
ssogate (Caddy) instance, under /sso/ on the admin endpoint. The commands
print the API's JSON response; on an error they print its message and exit
with a non-zero status.

A typical sequence:

  BIN org create acme --name "Acme Inc." --owner it@acme.com   # prints the owner's set-password link
  BIN org add-domain acme acme.com          # shows the TXT record to publish
  BIN org verify-domain acme acme.com       # after publishing it
  BIN org set-idp acme --metadata idp-metadata.xml
  BIN org set-admin-group acme --name "Gateway admins" --id 00g1abc
  BIN org scim-token acme                   # token and base URL for the IdP's provisioning
  BIN org step acme register done           # likewise saml, scim, users, once done in the IdP
  BIN org activate acme                     # all seven steps green, backup login included

The admin endpoint is found as for 'BIN reload': from --address, else from
the config given with --config (and --adapter), else the default.
`

// orgCommands builds the `org` sub-commands.
func orgCommands(cmd *cobra.Command) {
	// Without this, cobra answers an unknown sub-command (`org bogus`)
	// with the help text and exit status 0, so a script's typo would look
	// like success.
	cmd.Args = func(c *cobra.Command, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("unknown command %q for %q; see '%s org --help'", args[0], InvokedName()+" org", InvokedName())
		}
		return nil
	}
	cmd.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
	// Caddy names its root command "caddy" whatever the binary is called;
	// the help of these commands names the binary as invoked, so that
	// what it shows can be pasted back.
	help := cmd.HelpFunc()
	cmd.SetHelpFunc(func(c *cobra.Command, args []string) {
		c.Root().Use = InvokedName()
		help(c, args)
	})

	pf := cmd.PersistentFlags()
	pf.String("address", "", "Address of the administration listener, if different from config")
	pf.StringP("config", "c", "", "Configuration file to read the admin address from")
	pf.StringP("adapter", "a", "", "Name of config adapter to apply")

	sub := func(use, short string, nargs int, run func(cmd *cobra.Command, args []string) error) *cobra.Command {
		c := &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(nargs), RunE: run}
		cmd.AddCommand(c)
		return c
	}

	sub("list", "Lists organizations", 0, func(c *cobra.Command, _ []string) error {
		return orgRequest(c, http.MethodGet, "/orgs", nil)
	})

	create := sub("create <id> --name <name> --owner <email>", "Creates an inactive organization", 1,
		func(c *cobra.Command, args []string) error {
			return orgRequestShowingLink(c, http.MethodPost, "/orgs", "owner_invite_url", "Owner's set-password link", map[string]string{
				"id":          args[0],
				"name":        mustFlag(c, "name"),
				"owner_email": mustFlag(c, "owner"),
			})
		})
	create.Flags().String("name", "", "display name (required)")
	create.Flags().String("owner", "", "owner's email address (required)")
	_ = create.MarkFlagRequired("name")
	_ = create.MarkFlagRequired("owner")

	sub("show <id>", "Shows an organization, its domains, SP URLs and what activation still needs", 1,
		func(c *cobra.Command, args []string) error {
			return orgRequest(c, http.MethodGet, orgPath(args[0]), nil)
		})

	update := sub("update <id> [--name <name>] [--allow-idp-initiated=<bool>]", "Changes an organization's name or IdP-initiated sign-in", 1,
		func(c *cobra.Command, args []string) error {
			body := map[string]any{}
			if c.Flags().Changed("name") {
				body["name"] = mustFlag(c, "name")
			}
			if c.Flags().Changed("allow-idp-initiated") {
				v, _ := c.Flags().GetBool("allow-idp-initiated")
				body["allow_idp_initiated"] = v
			}
			if len(body) == 0 {
				return errors.New("nothing to change: give --name and/or --allow-idp-initiated")
			}
			return orgRequest(c, http.MethodPatch, orgPath(args[0]), body)
		})
	update.Flags().String("name", "", "new display name")
	update.Flags().Bool("allow-idp-initiated", false, "accept IdP-initiated (unsolicited) sign-ins")

	sub("delete <id>", "Deletes an organization and all its data", 1, func(c *cobra.Command, args []string) error {
		return orgRequest(c, http.MethodDelete, orgPath(args[0]), nil)
	})

	sub("add-domain <id> <domain>", "Claims a domain; prints the DNS TXT record that verifies it", 2,
		func(c *cobra.Command, args []string) error {
			return orgRequest(c, http.MethodPost, orgPath(args[0])+"/domains", map[string]string{"name": args[1]})
		})

	verify := sub("verify-domain <id> <domain> [--force]", "Checks a domain's DNS TXT record (or, with --force, marks it verified)", 2,
		func(c *cobra.Command, args []string) error {
			force, _ := c.Flags().GetBool("force")
			return orgRequest(c, http.MethodPost, domainPath(args[0], args[1])+"/verify", map[string]bool{"force": force})
		})
	verify.Flags().Bool("force", false, "mark the domain verified without a DNS check (operator only)")

	sub("remove-domain <id> <domain>", "Removes a domain from an organization", 2,
		func(c *cobra.Command, args []string) error {
			return orgRequest(c, http.MethodDelete, domainPath(args[0], args[1]), nil)
		})

	setIdP := sub("set-idp <id> (--entity-id <id> --sso-url <url> --cert <file>... [--slo-url <url>] | --metadata <file> | --metadata-url <url>)",
		"Sets the organization's SAML IdP", 1, runSetIdP)
	setIdP.Flags().String("entity-id", "", "IdP entity ID (issuer)")
	setIdP.Flags().String("sso-url", "", "IdP single sign-on URL (HTTP-Redirect binding)")
	setIdP.Flags().StringArray("cert", nil, "PEM file of an IdP signing certificate (repeatable)")
	setIdP.Flags().String("metadata", "", "IdP metadata XML file ('-' for standard input) instead of the three flags above")
	setIdP.MarkFlagsMutuallyExclusive("metadata", "entity-id")
	setIdP.MarkFlagsMutuallyExclusive("metadata", "sso-url")
	setIdP.MarkFlagsMutuallyExclusive("metadata", "cert")
	setIdP.Flags().String("metadata-url", "", "https URL of the IdP's metadata, fetched by the gateway, instead of the flags above")
	setIdP.Flags().String("slo-url", "", "IdP single logout URL (HTTP-Redirect binding), optional; metadata gives its own")
	setIdP.MarkFlagsMutuallyExclusive("metadata", "slo-url")
	setIdP.MarkFlagsMutuallyExclusive("metadata-url", "slo-url")
	setIdP.MarkFlagsMutuallyExclusive("metadata-url", "metadata")
	setIdP.MarkFlagsMutuallyExclusive("metadata-url", "entity-id")
	setIdP.MarkFlagsMutuallyExclusive("metadata-url", "sso-url")
	setIdP.MarkFlagsMutuallyExclusive("metadata-url", "cert")

	group := sub("set-admin-group <id> --name <group name> --id <group id>", "Sets the IdP group whose members may sign in", 1,
		func(c *cobra.Command, args []string) error {
			return orgRequest(c, http.MethodPut, orgPath(args[0])+"/admin-group", map[string]string{
				"name": mustFlag(c, "name"),
				"id":   mustFlag(c, "id"),
			})
		})
	group.Flags().String("name", "", "the group's name at the IdP (required)")
	group.Flags().String("id", "", "the group's ID at the IdP (required)")
	_ = group.MarkFlagRequired("name")
	_ = group.MarkFlagRequired("id")

	sub("step <id> <step> done|undone", "Ticks or unticks a configurator step's \"done in the IdP\" (register, saml, scim, users)", 3,
		func(c *cobra.Command, args []string) error {
			var done bool
			switch args[2] {
			case "done":
				done = true
			case "undone":
			default:
				return fmt.Errorf("the last argument must be done or undone, not %q", args[2])
			}
			return orgRequest(c, http.MethodPut, orgPath(args[0])+"/steps/"+url.PathEscape(args[1]), map[string]bool{"done": done})
		})

	sub("activate <id>", "Turns on SSO for an organization (refused unless all seven steps are green)", 1,
		func(c *cobra.Command, args []string) error {
			return orgRequest(c, http.MethodPost, orgPath(args[0])+"/activate", nil)
		})

	sub("deactivate <id>", "Turns off SSO for an organization and ends its SSO sessions", 1,
		func(c *cobra.Command, args []string) error {
			return orgRequest(c, http.MethodPost, orgPath(args[0])+"/deactivate", nil)
		})

	sub("scim-token <id>", "Generates the organization's SCIM bearer token, revoking the previous one; prints it once with the SCIM base URL", 1,
		func(c *cobra.Command, args []string) error {
			return orgRequest(c, http.MethodPost, orgPath(args[0])+"/scim-token", nil)
		})

	audit := sub("audit <id> [--limit <n>] [--before <cursor> | --all]", "Shows an organization's audit events, newest first, a page at a time", 1, runAudit)
	audit.Flags().Int("limit", 0, "events per page (default 50, at most 1000)")
	audit.Flags().String("before", "", "cursor of the page to show, as printed after the previous page")
	audit.Flags().Bool("all", false, "page through the whole trail and print it as one array")
	audit.MarkFlagsMutuallyExclusive("before", "all")

	sub("unlink-user <id> <email|user id>", "Forgets the IdP identifier stored for a user, so that their next SSO sign-in links the account again; ends their sessions (not for SCIM-provisioned users)", 2,
		func(c *cobra.Command, args []string) error {
			return orgRequest(c, http.MethodPost, orgPath(args[0])+"/users/"+url.PathEscape(args[1])+"/unlink", nil)
		})

	localAccountCommands(cmd) // orglocal.go
}

// runAudit prints a page of the audit trail, and on standard error how to
// get the next one; with --all it follows the pages to the end.
func runAudit(c *cobra.Command, args []string) error {
	limit, _ := c.Flags().GetInt("limit")
	all, _ := c.Flags().GetBool("all")
	before := mustFlag(c, "before")
	if all && limit == 0 {
		limit = 1000
	}
	var events []json.RawMessage
	for {
		q := url.Values{}
		if limit > 0 {
			q.Set("limit", strconv.Itoa(limit))
		}
		if before != "" {
			q.Set("before", before)
		}
		p := orgPath(args[0]) + "/audit"
		if len(q) > 0 {
			p += "?" + q.Encode()
		}
		var page []json.RawMessage
		next, err := orgGet(c, p, &page)
		if err != nil {
			return err
		}
		events = append(events, page...)
		if !all || next == "" {
			if next != "" {
				fmt.Fprintf(c.ErrOrStderr(), "More events: %s org audit %s --before %s\n", InvokedName(), args[0], next)
			}
			break
		}
		if next == before {
			return fmt.Errorf("the admin API returned the same page cursor twice (%s)", next)
		}
		before = next
	}
	if events == nil {
		events = []json.RawMessage{}
	}
	out, err := json.MarshalIndent(events, "", "  ")
	if err != nil {
		return err
	}
	_, err = c.OutOrStdout().Write(append(out, '\n'))
	return err
}

// nextCursor is the `before` cursor of a Link: <…>; rel="next" header.
var nextCursor = regexp.MustCompile(`<[^>]*[?&]before=([^&>]+)[^>]*>;\s*rel="next"`)

// orgGet sends a GET to the organization API, decodes the JSON response
// into v and returns the cursor of the next page, if any.
func orgGet(c *cobra.Command, path string, v any) (string, error) {
	address, _ := c.Flags().GetString("address")
	config, _ := c.Flags().GetString("config")
	adapter, _ := c.Flags().GetString("adapter")
	adminAddr, err := caddycmd.DetermineAdminAPIAddress(address, nil, config, adapter)
	if err != nil {
		return "", fmt.Errorf("couldn't determine admin API address: %w", err)
	}
	resp, err := caddycmd.AdminAPIRequest(adminAddr, http.MethodGet, "/sso"+path, nil, nil)
	if err != nil {
		return "", apiError(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(v); err != nil {
		return "", fmt.Errorf("reading response: %w", err)
	}
	next := ""
	if m := nextCursor.FindStringSubmatch(resp.Header.Get("Link")); m != nil {
		if next, err = url.QueryUnescape(m[1]); err != nil {
			return "", fmt.Errorf("reading the next page's link: %w", err)
		}
	}
	return next, nil
}

func runSetIdP(c *cobra.Command, args []string) error {
	if u, _ := c.Flags().GetString("metadata-url"); u != "" {
		return orgRequest(c, http.MethodPut, orgPath(args[0])+"/idp", map[string]string{"metadata_url": u})
	}
	if md, _ := c.Flags().GetString("metadata"); md != "" {
		doc, err := readInput(md)
		if err != nil {
			return err
		}
		return orgRequest(c, http.MethodPut, orgPath(args[0])+"/idp", map[string]string{"metadata_xml": string(doc)})
	}
	files, _ := c.Flags().GetStringArray("cert")
	certs := make([]string, 0, len(files))
	for _, f := range files {
		b, err := readInput(f)
		if err != nil {
			return err
		}
		certs = append(certs, string(b))
	}
	return orgRequest(c, http.MethodPut, orgPath(args[0])+"/idp", map[string]any{
		"entity_id":    mustFlag(c, "entity-id"),
		"sso_url":      mustFlag(c, "sso-url"),
		"certificates": certs,
		"slo_url":      mustFlag(c, "slo-url"),
	})
}

func mustFlag(c *cobra.Command, name string) string {
	v, _ := c.Flags().GetString(name)
	return v
}

func orgPath(id string) string { return "/orgs/" + url.PathEscape(id) }

func domainPath(id, domain string) string {
	return orgPath(id) + "/domains/" + url.PathEscape(domain)
}

// readInput reads a file, or standard input for "-", up to maxFileSize.
func readInput(name string) ([]byte, error) {
	var r io.Reader
	if name == "-" {
		r = os.Stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, maxFileSize)
	}
	return b, nil
}

// orgRequest sends one request to the organization API on the admin
// endpoint and prints the JSON response.
func orgRequest(c *cobra.Command, method, path string, body any) error {
	address, _ := c.Flags().GetString("address")
	config, _ := c.Flags().GetString("config")
	adapter, _ := c.Flags().GetString("adapter")
	adminAddr, err := caddycmd.DetermineAdminAPIAddress(address, nil, config, adapter)
	if err != nil {
		return fmt.Errorf("couldn't determine admin API address: %w", err)
	}
	var rdr io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rdr = bytes.NewReader(b)
	}
	resp, err := caddycmd.AdminAPIRequest(adminAddr, method, "/sso"+path, nil, rdr)
	if err != nil {
		return apiError(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("reading response: %w", err)
	}
	if len(bytes.TrimSpace(out)) == 0 {
		return nil
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, bytes.TrimSpace(out), "", "  ") != nil {
		pretty.Reset()
		pretty.Write(bytes.TrimSpace(out))
	}
	pretty.WriteByte('\n')
	_, err = c.OutOrStdout().Write(pretty.Bytes())
	return err
}

// adminErrorPattern matches the error caddycmd.AdminAPIRequest returns
// for a 4xx/5xx response, which embeds the response body.
var adminErrorPattern = regexp.MustCompile(`(?s)HTTP (\d{3}): (.*)$`)

// apiError turns an admin API error response into the message it carries,
// such as `name: "com" is a public suffix; ...`.
func apiError(err error) error {
	m := adminErrorPattern.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	var body struct {
		Error   string   `json:"error"`
		Field   string   `json:"field"`
		Missing []string `json:"missing"`
	}
	if json.Unmarshal([]byte(m[2]), &body) != nil || body.Error == "" {
		return err
	}
	msg := body.Error
	if body.Field != "" {
		msg = body.Field + ": " + msg
	}
	msg += " (HTTP " + m[1] + ")"
	if len(body.Missing) > 0 {
		msg += "; missing:\n  - " + strings.Join(body.Missing, "\n  - ")
	}
	return errors.New(msg)
}
