package store

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/ssogate/ssogate/store/pgtest"
)

// TestMain runs the package's tests on Badger, then runs them all again
// on PostgreSQL in a child process (see suiteBackendEnv): one conformance
// suite for both backends. Without PostgreSQL the second run's tests
// skip, or fail with SSOGATE_POSTGRES_TESTS=required (CI). Benchmarks and
// fuzzing run once, on Badger.
func TestMain(m *testing.M) {
	code := pgtest.Run(m)
	if code == 0 && !suiteOnPostgres() && !benchOrFuzz(os.Args[1:]) {
		code = runSuiteOnPostgres()
	}
	os.Exit(code)
}

func benchOrFuzz(args []string) bool {
	for _, a := range args {
		if strings.HasPrefix(a, "-test.bench=") || strings.HasPrefix(a, "-test.fuzz=") {
			return true
		}
	}
	return false
}

func runSuiteOnPostgres() int {
	fmt.Println("=== the store suite again, on PostgreSQL")
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	cmd.Env = append(os.Environ(), suiteBackendEnv+"=postgres")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		fmt.Fprintf(os.Stderr, "store suite on PostgreSQL: %v\n", err)
		return 1
	}
	return 0
}
