package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/ssogate/ssogate/examples/demo"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "demo",
		Usage: "[--gateway <addr>] [--idp <addr>] [--upstream <addr>] [--admin <addr>] [--data <dir>] [--password <pw>] [--storage badger|postgres] [--verbose]",
		Short: "Runs a self-contained demo: gateway, demo SAML IdP and demo app",
		Long: `
Runs the gateway in front of a demo application, with a demo SAML identity
provider and one active organization ("example", domain example.com), all
in this process, with the store in a temporary directory unless --data is
given. Sign in as alice@example.com (in the sign-in group, and may change
SSO: gets in) or bob@example.com (not in it: refused). Caddy's admin API
listens on a free loopback port unless --admin is given, and Caddy keeps
its files in the data directory, not in ~/.local/share/caddy. With
--storage postgres the store is the PostgreSQL database named by the
SSOGATE_DATABASE_URL environment variable instead. The logs go
to demo.log in the data directory; --verbose prints them too. Press
Ctrl-C to stop.`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().String("gateway", demo.DefaultGateway, "gateway listen address")
			cmd.Flags().String("idp", demo.DefaultIdP, "demo IdP listen address")
			cmd.Flags().String("upstream", demo.DefaultUpstream, "demo upstream listen address")
			cmd.Flags().String("admin", demo.DefaultAdmin, "Caddy admin API listen address (default: a free loopback port)")
			cmd.Flags().String("data", "", "data directory (default: a new temporary directory)")
			cmd.Flags().String("password", demo.DefaultPassword, "password of the demo users")
			cmd.Flags().String("storage", "badger", "where the store lives: badger (in the data directory) or postgres (the database at $SSOGATE_DATABASE_URL)")
			cmd.Flags().Bool("verbose", false, "print every log line (default: only to demo.log in the data directory)")
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
	// Caddy puts its instance ID and autosaved config under the user's
	// data and config directories; a demo leaves those alone. This
	// process is only the demo, so its environment is the place.
	for _, v := range []string{"XDG_DATA_HOME", "XDG_CONFIG_HOME"} {
		if err := os.Setenv(v, filepath.Join(data, "home")); err != nil {
			return 1, fmt.Errorf("demo: %w", err)
		}
	}
	admin := fl.String("admin")
	if admin == "" {
		addr, err := demo.FreeAddr()
		if err != nil {
			return 1, err
		}
		admin = addr
	}
	cfg := demo.Config{
		Gateway:  fl.String("gateway"),
		IdP:      fl.String("idp"),
		Upstream: fl.String("upstream"),
		Admin:    admin,
		DataDir:  data,
		Password: fl.String("password"),
		LogFile:  filepath.Join(data, "demo.log"),
	}
	switch fl.String("storage") {
	case "badger":
	case "postgres":
		if os.Getenv("SSOGATE_DATABASE_URL") == "" {
			return 1, fmt.Errorf("demo: --storage postgres needs the database's connection string in SSOGATE_DATABASE_URL")
		}
		// A placeholder, so that the connection string (a secret) is in
		// no config Caddy holds or shows.
		cfg.Storage = map[string]any{"module": "postgres", "dsn": "{env.SSOGATE_DATABASE_URL}"}
	default:
		return 1, fmt.Errorf("demo: --storage %q: want badger or postgres", fl.String("storage"))
	}
	logs := cfg.LogFile
	if fl.Bool("verbose") {
		cfg.LogFile, logs = "", "printed below (--verbose)"
	}

	// What a person needs comes first, before any log line.
	gw := "http://" + cfg.Gateway
	fmt.Printf(`
ssogate demo

  Open            %s/
  Sign in as      %s   (in the sign-in group: gets in, and may change SSO)
             or   %s     (not in it: refused)
  Password        %s

  IdP integration %s/sso/admin/   (the org admin's configurator)
  Backup login    %s/sso/backup   (%s, same password; works without the IdP)

  Demo IdP        http://%s
  Demo upstream   http://%s   (direct, without the gateway)
  Admin API       http://%s/sso/orgs
  Data            %s
  Logs            %s

Starting…
`, gw, demo.AliceEmail, demo.BobEmail, cfg.Password, gw, gw, demo.AliceEmail,
		cfg.IdP, cfg.Upstream, admin, data, logs)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env, err := demo.Start(ctx, cfg)
	if err != nil {
		return 1, err
	}
	defer env.Stop()
	fmt.Printf("Ready: open %s/ — press Ctrl-C to stop.\n", env.GatewayURL)
	<-ctx.Done()
	fmt.Println("\nstopping")
	return 0, nil
}
