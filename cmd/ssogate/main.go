// Command ssogate is Caddy with the ssogate SSO gateway built in, plus the
// `ssogate org` commands for operators and `ssogate demo`.
package main

import (
	_ "time/tzdata"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/ssogate/ssogate/caddymodule"
)

func main() {
	caddycmd.Main()
}
