package caddymodule

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	"github.com/ssogate/ssogate/caddymodule/orgcli"
)

// The `org` command is registered here, not in cmd/ssogate, so that a Caddy
// built with `xcaddy build --with github.com/ssogate/ssogate/caddymodule`
// has it too.
func init() {
	caddycmd.RegisterCommand(orgcli.Command())
}
