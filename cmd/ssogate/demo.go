package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/ssogate/ssogate/examples/demo"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "demo",
		Usage: "[--gateway <addr>] [--idp <addr>] [--upstream <addr>] [--admin <addr>] [--data <dir>] [--password <pw>]",
		Short: "Runs a self-contained demo: gateway, demo SAML IdP and demo app",
		Long: `
Runs the gateway in front of a demo application, with a demo SAML identity
provider and one active organization ("example", domain example.com), all
in this process, with the store in a temporary directory unless --data is
given. Sign in as alice@example.com (in the admin group: gets in) or
bob@example.com (not in it: refused). Press Ctrl-C to stop.`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().String("gateway", demo.DefaultGateway, "gateway listen address")
			cmd.Flags().String("idp", demo.DefaultIdP, "demo IdP listen address")
			cmd.Flags().String("upstream", demo.DefaultUpstream, "demo upstream listen address")
			cmd.Flags().String("admin", demo.DefaultAdmin, "Caddy admin API listen address")
			cmd.Flags().String("data", "", "data directory (default: a new temporary directory)")
			cmd.Flags().String("password", demo.DefaultPassword, "password of the demo users")
			cmd.RunE = caddycmd.WrapCommandFuncForCobra(runDemo)
		},
	})
}

func runDemo(fl caddycmd.Flags) (int, error) {
	data := fl.String("data")
	if data == "" {
		dir, err := demo.TempDataDir()
		if err != nil {
			return 1, err
		}
		data = dir
		defer os.RemoveAll(dir)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env, err := demo.Start(ctx, demo.Config{
		Gateway:  fl.String("gateway"),
		IdP:      fl.String("idp"),
		Upstream: fl.String("upstream"),
		Admin:    fl.String("admin"),
		DataDir:  data,
		Password: fl.String("password"),
	})
	if err != nil {
		return 1, err
	}
	defer env.Stop()
	fmt.Printf(`
ssogate demo is running.

  Open            %s/
  Demo IdP        %s
  Demo upstream   %s   (direct, without the gateway)
  Admin API       %s/sso/orgs
  Data            %s

  Sign in as      %s   (in the admin group: gets in)
             or   %s     (not in it: refused)
  Password        %s

  IdP integration %s/sso/admin/   (the org admin's configurator)
  Backup login    %s/sso/backup   (%s, same password; works without the IdP)

Press Ctrl-C to stop.
`, env.GatewayURL, env.IdPURL, env.UpstreamURL, env.AdminURL, data,
		demo.AliceEmail, demo.BobEmail, fl.String("password"),
		env.GatewayURL, env.GatewayURL, demo.AliceEmail)
	<-ctx.Done()
	fmt.Println("\nstopping")
	return 0, nil
}
