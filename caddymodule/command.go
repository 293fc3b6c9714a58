package caddymodule

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	"github.com/ssogate/ssogate/caddymodule/orgcli"
	"github.com/ssogate/ssogate/caddymodule/storecli"
)

// The `org` and `store` commands are registered here, not in cmd/ssogate,
// so that a Caddy built with `xcaddy build --with
// github.com/ssogate/ssogate/caddymodule` has them too.
func init() {
	caddycmd.RegisterCommand(orgcli.Command())
	caddycmd.RegisterCommand(storecli.Command())
}
