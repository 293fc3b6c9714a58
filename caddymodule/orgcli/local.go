package orgcli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"
)

// localAccountCommands adds the `org` sub-commands for local accounts:
// the owner, invited users and the backup login.
func localAccountCommands(cmd *cobra.Command) {
	add := func(c *cobra.Command) *cobra.Command {
		cmd.AddCommand(c)
		return c
	}

	add(&cobra.Command{
		Use:   "reset-backup <id>",
		Short: "Issues a new set-password link for the organization's backup login (recovery)",
		Long: `Issues a new one-time set-password link for the organization's backup login
account and revokes earlier links. The current password keeps working until
the link is used; using it ends the account's sessions. If the backup account
is gone, the owner's local account is designated again (and re-created if
needed). Send the link to the account's owner over a trusted channel: it is
shown only now.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return orgRequestShowingLink(c, http.MethodPost, orgPath(args[0])+"/backup-login/reset", "set_password_url", "Set-password link", nil)
		},
	})

	add(&cobra.Command{
		Use:   "set-backup <id> <email>",
		Short: "Designates the organization's backup login (a local account that has signed in at least once)",
		Args:  cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			return orgRequest(c, http.MethodPut, orgPath(args[0])+"/backup-login", map[string]string{"user": args[1]})
		},
	})

	add(&cobra.Command{
		Use:   "show-backup <id>",
		Short: "Shows the organization's backup login and the accounts it may move to",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return orgRequest(c, http.MethodGet, orgPath(args[0])+"/backup-login", nil)
		},
	})

	invite := add(&cobra.Command{
		Use:   "invite <id> <email> [--role admin|user] [--name <display name>]",
		Short: "Adds a local account to the organization; prints its set-password link",
		Args:  cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			role, _ := c.Flags().GetString("role")
			name, _ := c.Flags().GetString("name")
			return orgRequestShowingLink(c, http.MethodPost, orgPath(args[0])+"/local-users", "set_password_url", "Set-password link",
				map[string]string{"email": args[1], "role": role, "display_name": name})
		},
	})
	invite.Flags().String("role", "user", "admin or user")
	invite.Flags().String("name", "", "display name")

	add(&cobra.Command{
		Use:   "remove-user <id> <email|user id>",
		Short: "Removes a local account (not the backup login) with its sessions",
		Args:  cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			return orgRequest(c, http.MethodDelete, orgPath(args[0])+"/local-users/"+url.PathEscape(args[1]), nil)
		},
	})

	users := add(&cobra.Command{
		Use:   "users <id> [--role admin|user] [--status active|inactive|invited]",
		Short: "Lists the organization's users with role, status and source",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			q := url.Values{}
			for _, f := range []string{"role", "status"} {
				if v, _ := c.Flags().GetString(f); v != "" {
					q.Set(f, v)
				}
			}
			p := orgPath(args[0]) + "/users"
			if len(q) > 0 {
				p += "?" + q.Encode()
			}
			return orgRequest(c, http.MethodGet, p, nil)
		},
	})
	users.Flags().String("role", "", "only this role")
	users.Flags().String("status", "", "only this status")
}

// orgRequestShowingLink is orgRequest for responses that carry a one-time
// link in field: it prints the JSON response, then the link on its own
// line on standard error with a reminder that it is shown only once.
func orgRequestShowingLink(c *cobra.Command, method, path, field, label string, body any) error {
	var buf bytes.Buffer
	out := c.OutOrStdout()
	c.SetOut(&buf)
	err := orgRequest(c, method, path, body)
	c.SetOut(out)
	if _, werr := out.Write(buf.Bytes()); werr != nil && err == nil {
		err = werr
	}
	if err != nil {
		return err
	}
	var resp map[string]any
	if json.Unmarshal(buf.Bytes(), &resp) == nil {
		if link, _ := resp[field].(string); link != "" {
			fmt.Fprintf(c.ErrOrStderr(), "\n%s (works once, until %v; shown only now):\n  %s\n", label, expiry(resp), link)
		}
	}
	return nil
}

func expiry(resp map[string]any) any {
	for _, k := range []string{"expires_at", "owner_invite_expires"} {
		if v, ok := resp[k]; ok {
			return v
		}
	}
	return "it expires"
}
