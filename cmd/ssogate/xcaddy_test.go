//go:build unix

package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

// xcaddyTestVar set to "required" (as .ci/run does) turns a missing xcaddy
// into a failure instead of a skip.
const xcaddyTestVar = "SSOGATE_XCADDY_TEST"

// TestXcaddyBuildHasModuleAndOrgCommand builds Caddy the way the README
// tells operators to, `xcaddy build --with github.com/ssogate/ssogate/caddymodule`,
// from this checkout (a replace to the local tree), and checks that the
// binary has the module and the `org` command, names itself `caddy` in
// the help, and fails on an unknown sub-command. It builds the Caddy
// version this module requires, so that the Go build cache of the
// ordinary tests serves most of it.
func TestXcaddyBuildHasModuleAndOrgCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Caddy binary; skipped with -short")
	}
	xcaddy := findXcaddy()
	if xcaddy == "" {
		if os.Getenv(xcaddyTestVar) == "required" {
			t.Fatalf("xcaddy not found and %s=required; install it with `go install github.com/caddyserver/xcaddy/cmd/xcaddy@latest`", xcaddyTestVar)
		}
		t.Skipf("xcaddy not found (go install github.com/caddyserver/xcaddy/cmd/xcaddy@latest); set %s=required to fail instead", xcaddyTestVar)
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	version := caddyVersion(t)
	bin := filepath.Join(t.TempDir(), "caddy")
	// --with names the package to import; the replace points its module
	// (the repository root) at this checkout.
	build := exec.Command(xcaddy, "build", version, "--output", bin,
		"--with", "github.com/ssogate/ssogate/caddymodule",
		"--replace", "github.com/ssogate/ssogate="+root)
	build.Dir = t.TempDir()
	// Offline: every module the build needs is in the module cache, put
	// there (and checked against go.sum) when this test binary was built,
	// which also built all of Caddy's standard modules. Without this, the
	// go command would ask the proxy about github.com/ssogate/ssogate/caddymodule
	// as a module path before trying the replaced repository root.
	build.Env = append(os.Environ(), "GOPROXY=off", "GOSUMDB=off", "GOFLAGS=-mod=mod")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("xcaddy build: %v\n%s", err, tail(out, 4000))
	}

	out := run(t, bin, "list-modules")
	for _, m := range []string{"sso", "http.handlers.sso_gateway", "admin.api.sso", "admin.api.sso_store"} {
		if !hasLine(out, m) {
			t.Errorf("list-modules lacks %s:\n%s", m, out)
		}
	}
	checkOrgCommand(t, bin, "caddy")
}

// TestOrgCommandHelpAndUnknownSubcommand runs this test binary as
// `ssogate` (through a symlink of that name, since the help names the
// binary as invoked).
func TestOrgCommandHelpAndUnknownSubcommand(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "ssogate")
	if err := os.Symlink(self, link); err != nil {
		t.Fatal(err)
	}
	t.Setenv(runAsSSOGate, "1")
	checkOrgCommand(t, link, "ssogate")
}

func checkOrgCommand(t *testing.T, bin, name string) {
	t.Helper()
	help := run(t, bin, "org", "--help")
	for _, want := range []string{name + " org create acme", name + " org [command]", "scim-token"} {
		if !strings.Contains(help, want) {
			t.Errorf("%s org --help lacks %q:\n%s", name, want, help)
		}
	}
	if strings.Contains(help, otherName(name)+" org") {
		t.Errorf("%s org --help names the other binary:\n%s", name, help)
	}

	cmd := exec.Command(bin, "org", "bogus")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("%s org bogus: err=%v, want a non-zero exit\n%s", name, err, out)
	}
	if !strings.Contains(string(out), `unknown command "bogus" for "`+name+` org"`) {
		t.Errorf("%s org bogus does not name the unknown command:\n%s", name, out)
	}
}

func otherName(name string) string {
	if name == "caddy" {
		return "ssogate"
	}
	return "caddy"
}

func run(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func hasLine(out, line string) bool {
	for l := range strings.SplitSeq(out, "\n") {
		if strings.TrimSpace(l) == line {
			return true
		}
	}
	return false
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return bytes.Clone(b)
}

// findXcaddy looks on PATH, then where `go install` puts it.
func findXcaddy() string {
	if p, err := exec.LookPath("xcaddy"); err == nil {
		return p
	}
	dirs := []string{os.Getenv("GOBIN")}
	if gp := os.Getenv("GOPATH"); gp != "" {
		dirs = append(dirs, filepath.Join(filepath.SplitList(gp)[0], "bin"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		p := filepath.Join(d, "xcaddy")
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

// caddyVersion is the Caddy version this test binary was built with.
func caddyVersion(t *testing.T) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		t.Fatal("no build info")
	}
	for _, d := range bi.Deps {
		if d.Path == "github.com/caddyserver/caddy/v2" {
			if d.Replace != nil {
				return d.Replace.Version
			}
			return d.Version
		}
	}
	t.Fatal("the test binary does not depend on Caddy")
	return ""
}
