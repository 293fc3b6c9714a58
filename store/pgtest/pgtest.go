// Package pgtest gives tests a real PostgreSQL server: a schema of their own
// on a server the test binary shares (Schema), or a dedicated server they
// may stop, restart and kill (StartServer).
//
// The shared server is the one SSOGATE_TEST_POSTGRES_DSN names (.ci/run
// starts one and sets it), else one this package starts, once per test
// binary, from the PostgreSQL binaries it finds (/usr/lib/postgresql/*/bin,
// newest first, then PATH): initdb in a temporary directory, trust
// authentication, a loopback port, fsync settings left at their defaults.
// When the tests run as root, as CI does, initdb and the server run as the
// "postgres" system user, since PostgreSQL refuses to run as root.
//
// Without a server the tests that ask for one are skipped, unless
// SSOGATE_POSTGRES_TESTS=required, which makes that a failure (CI sets it,
// as it sets SSOGATE_BROWSER_TESTS for the browser test).
//
// A server this package starts is a child of the test process and gets
// SIGINT (fast shutdown) when that process ends, however it ends. A test
// binary whose tests use Schema should call Main from its TestMain, which
// also removes the server's directory; a directory left behind by a killed
// test binary is removed by the next one. This package does not import
// package store, so store's own tests can use it.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// EnvDSN names an already running server to use instead of starting one.
	EnvDSN = "SSOGATE_TEST_POSTGRES_DSN"
	// EnvRequired, set to "required", turns "no PostgreSQL" from a skip
	// into a failure.
	EnvRequired = "SSOGATE_POSTGRES_TESTS"

	// startTimeout bounds how long a server may take to accept
	// connections (crash recovery after Kill included). Generous: the
	// machine is shared and slow.
	startTimeout = 2 * time.Minute
	// stopTimeout bounds a fast shutdown before the server is killed.
	stopTimeout = time.Minute

	dirPattern = "ssogate-pgtest-*"
	ownerFile  = "owner.pid"
)

// shared is the test binary's shared server: started by the first Schema
// call, stopped by Main (or by its parent-death signal).
var shared struct {
	once sync.Once
	dsn  string
	srv  *Server // nil when the DSN came from the environment
	err  error
}

// Main runs the tests, stops the shared server if this package started one
// and exits with the tests' status. Call it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) {
	os.Exit(Run(m))
}

// Run is Main without the exit, for a TestMain that does more after the
// tests; it returns their status.
func Run(m *testing.M) int {
	code := m.Run()
	if shared.srv != nil {
		if err := shared.srv.shutdown(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		}
		shared.srv = nil
	}
	return code
}

// Schema returns a connection string for the shared server and the name of
// a new, empty schema of the test's own there, dropped when the test ends.
// It skips the test when no server can be had (fails it when
// SSOGATE_POSTGRES_TESTS=required).
func Schema(t testing.TB) (dsn, schema string) {
	t.Helper()
	shared.once.Do(func() {
		if dsn := os.Getenv(EnvDSN); dsn != "" {
			shared.dsn = dsn
			return
		}
		srv, err := newServer()
		if err == nil {
			err = srv.Start()
			if err != nil {
				_ = srv.shutdown()
			}
		}
		if err != nil {
			shared.err = err
			return
		}
		shared.srv, shared.dsn = srv, srv.DSN()
	})
	if shared.err != nil {
		unavailable(t, shared.err)
	}
	schema = schemaName(t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, shared.dsn)
	if err != nil {
		// A server that was named explicitly must work: no skip.
		t.Fatalf("pgtest: connect to the shared server: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create schema %s: %v", schema, err)
	}
	t.Cleanup(func() { dropSchema(t, shared.dsn, schema) })
	return shared.dsn, schema
}

func dropSchema(t testing.TB, dsn, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Errorf("pgtest: drop schema %s: %v", schema, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
		t.Errorf("pgtest: drop schema %s: %v", schema, err)
	}
}

// schemaName derives a unique schema name from the test's name: lower-case
// letters, digits and underscores, at most 63 bytes (PostgreSQL's limit).
func schemaName(test string) string {
	var b strings.Builder
	b.WriteString("t_")
	for _, r := range strings.ToLower(test) {
		if b.Len() >= 40 {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	b.WriteByte('_')
	b.WriteString(hex.EncodeToString(rnd[:]))
	return b.String()
}

func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv(EnvRequired) == "required" {
		t.Fatalf("%s=required but no PostgreSQL: %v", EnvRequired, err)
	}
	t.Skipf("no PostgreSQL (%v); set %s=required to fail instead", err, EnvRequired)
}

// Server is a PostgreSQL server of the test's own, on a loopback port that
// stays the same across Stop and Start, so that clients can reconnect.
type Server struct {
	bin  string // directory holding initdb and postgres
	dir  string // owned by the server's user: data/, log
	port int
	cred *syscall.Credential // the postgres user's, when running as root

	mu     sync.Mutex
	proc   *os.Process
	exited chan struct{} // closed when proc has been waited for
}

// StartServer starts a dedicated server for the test and stops it (and
// removes its files) when the test ends. It skips the test when PostgreSQL
// is not installed (fails it when SSOGATE_POSTGRES_TESTS=required).
func StartServer(t testing.TB) *Server {
	t.Helper()
	s, err := newServer()
	if err != nil {
		unavailable(t, err)
	}
	t.Cleanup(func() {
		if err := s.shutdown(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	if err := s.Start(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return s
}

// DSN is a connection string for the server's "postgres" database as the
// "postgres" superuser.
func (s *Server) DSN() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable connect_timeout=10", s.port)
}

// Start starts the server (it must not be running) and waits until it
// accepts connections; after Kill that includes crash recovery.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("pgtest: start: the server is running")
	}
	deadline := time.Now().Add(startTimeout)
	for {
		if err := s.spawn(); err != nil {
			return err
		}
		err := s.waitReady(deadline)
		if err == nil {
			return nil
		}
		// A postmaster that exited at once (after Kill, while the old
		// one's backends still hold its shared memory) is tried again.
		if s.proc != nil || time.Now().After(deadline) {
			return fmt.Errorf("pgtest: start: %w\n%s", err, s.logTail())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Stop shuts the server down (fast shutdown: clients are disconnected,
// committed work is kept) and waits for it to exit.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.signalAndWait(syscall.SIGINT, stopTimeout)
}

// Restart is Stop then Start.
func (s *Server) Restart() error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.Start()
}

// Kill sends SIGKILL to the postmaster, as a crash would; Start then
// recovers from the write-ahead log.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.signalAndWait(syscall.SIGKILL, stopTimeout)
}

// signalAndWait stops the running postmaster with sig, falling back to
// SIGKILL after timeout. s.mu is held.
func (s *Server) signalAndWait(sig syscall.Signal, timeout time.Duration) error {
	if s.proc == nil {
		return errors.New("pgtest: the server is not running")
	}
	if err := s.proc.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("pgtest: signal the server: %w", err)
	}
	select {
	case <-s.exited:
	case <-time.After(timeout):
		_ = s.proc.Kill()
		<-s.exited
	}
	s.proc, s.exited = nil, nil
	return nil
}

// shutdown stops the server if it runs and removes its directory.
func (s *Server) shutdown() error {
	s.mu.Lock()
	var err error
	if s.proc != nil {
		err = s.signalAndWait(syscall.SIGINT, stopTimeout)
	}
	s.mu.Unlock()
	if rerr := os.RemoveAll(s.dir); rerr != nil && err == nil {
		err = fmt.Errorf("pgtest: remove %s: %w", s.dir, rerr)
	}
	return err
}

// newServer finds the binaries, creates the directory and runs initdb.
func newServer() (*Server, error) {
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, and PostgreSQL refuses root: no postgres user to run it as: %w", err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	removeStale()
	if s.dir, err = os.MkdirTemp("", dirPattern); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		_ = os.RemoveAll(s.dir)
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if s.cred != nil {
		if err := os.Chown(s.dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			_ = os.RemoveAll(s.dir)
			return nil, fmt.Errorf("pgtest: %w", err)
		}
	}
	if s.port, err = freePort(); err != nil {
		_ = os.RemoveAll(s.dir)
		return nil, err
	}
	cmd := s.command("initdb", "-D", s.dataDir(), "-U", "postgres", "--auth=trust",
		"-E", "UTF8", "--locale=C", "--no-instructions")
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.RemoveAll(s.dir)
		return nil, fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}
	return s, nil
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }
func (s *Server) logPath() string { return filepath.Join(s.dir, "log") }

// command runs one of the server's binaries as the server's user, with no
// PG* variables of the caller's (PGDATA, PGPORT...) to redirect it.
func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "LC_ALL=C")
	cmd.Dir = s.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	return cmd
}

// spawn starts the postmaster. s.mu is held.
func (s *Server) spawn() error {
	logf, err := os.OpenFile(s.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	cmd := s.command("postgres", "-D", s.dataDir(), "-p", strconv.Itoa(s.port), "-k", s.dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200")
	cmd.Stdout, cmd.Stderr = logf, logf
	// The parent-death signal goes to the child when the thread that
	// started it ends, so that thread is kept, locked, until the server
	// has exited: a test binary that dies takes its server with it.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGINT
	started := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer logf.Close()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	s.proc, s.exited = cmd.Process, exited
	return nil
}

// waitReady polls until the server accepts a connection. s.mu is held; when
// the postmaster exits meanwhile, s.proc is reset.
func (s *Server) waitReady(deadline time.Time) error {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgx.Connect(ctx, s.DSN())
		if err == nil {
			err = conn.Ping(ctx)
			_ = conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.exited:
			s.proc, s.exited = nil, nil
			return fmt.Errorf("postgres exited: %w", err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not ready after %v: %w", startTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.logPath())
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// findBinaries returns the directory of the newest installed PostgreSQL's
// initdb and postgres.
func findBinaries() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		d := filepath.Dir(p)
		if isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", errors.New("no initdb and postgres in /usr/lib/postgresql/*/bin or PATH")
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// freePort asks the kernel for a free loopback port. Another process could
// take it before the server binds it; the server then fails to start and
// the test says why.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// removeStale removes the directories of servers whose test binary died
// without Main: its process is gone and so is its postmaster. Nothing is
// killed here.
func removeStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPattern))
	for _, d := range dirs {
		// No owner file yet: another binary is creating it right now.
		owner := pidIn(filepath.Join(d, ownerFile))
		if owner == 0 || alive(owner) {
			continue
		}
		if alive(pidIn(filepath.Join(d, "data", "postmaster.pid"))) {
			continue
		}
		_ = os.RemoveAll(d)
	}
}

// pidIn reads the process ID on the first line of file, or 0.
func pidIn(file string) int {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid
}

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
