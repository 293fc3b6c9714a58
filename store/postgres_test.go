package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ssogate/ssogate/store/pgschema"
	"github.com/ssogate/ssogate/store/pgtest"
)

// onceOnly skips a test of the backends themselves in the suite's second
// pass (see TestMain): it runs both backends already in the first.
func onceOnly(t *testing.T) {
	t.Helper()
	if suiteOnPostgres() {
		t.Skip("backend tests run in the first pass")
	}
}

// hangGuard bounds waits that only a bug would make long; it is no
// measure of speed.
const hangGuard = 2 * time.Minute

func openTestPostgres(t *testing.T) Backend {
	t.Helper()
	dsn, schema := pgtest.Schema(t)
	return openPostgresAt(t, dsn, schema)
}

func openPostgresAt(t testing.TB, dsn, schema string) *Postgres {
	t.Helper()
	return openPostgresWith(t, PostgresOptions{DSN: dsn, Schema: schema})
}

// openPostgresWith opens a backend with o (a quiet logger unless o has
// one), closed when the test ends.
func openPostgresWith(t testing.TB, o PostgresOptions) *Postgres {
	t.Helper()
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	p, err := OpenPostgres(ctx, o)
	if err != nil {
		t.Fatalf("OpenPostgres: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func sqlQuery[T any](t testing.TB, dsn, sql string, args ...any) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v T
	if err := conn.QueryRow(ctx, sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

func sqlExec(t testing.TB, dsn, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// recorder collects what a Subscribe listener is told.
type recorder struct {
	changes chan []string
	states  chan bool
}

func subscribe(p *Postgres) *recorder {
	r := &recorder{changes: make(chan []string, 100), states: make(chan bool, 100)}
	p.Subscribe(func(keys []string) { r.changes <- keys }, func(live bool) { r.states <- live })
	return r
}

func (r *recorder) next(t testing.TB) []string {
	t.Helper()
	select {
	case keys := <-r.changes:
		return keys
	case <-time.After(hangGuard):
		t.Fatal("no change notification")
		return nil
	}
}

func (r *recorder) state(t testing.TB) bool {
	t.Helper()
	select {
	case live := <-r.states:
		return live
	case <-time.After(hangGuard):
		t.Fatal("no state change")
		return false
	}
}

// Two backends on one schema are two gateway processes on one database:
// each sees the other's commits.
func TestPostgresSharedBetweenInstances(t *testing.T) {
	onceOnly(t)
	dsn, schema := pgtest.Schema(t)
	a, b := openPostgresAt(t, dsn, schema), openPostgresAt(t, dsn, schema)
	put(t, a, "from-a", "1")
	wantValue(t, b, "from-a", "1")
	put(t, b, "from-a", "2")
	wantValue(t, a, "from-a", "2")
}

// Change keys reach the other instances when, and only when, the
// transaction commits; an instance does not hear its own.
func TestPostgresNotifications(t *testing.T) {
	onceOnly(t)
	dsn, schema := pgtest.Schema(t)
	a, b := openPostgresAt(t, dsn, schema), openPostgresAt(t, dsn, schema)
	ra, rb := subscribe(a), subscribe(b)

	boom := errors.New("boom")
	err := b.Update(func(txn Txn) error {
		if err := txn.Set([]byte("k"), []byte("rolled back"), 0); err != nil {
			return err
		}
		return boom
	}, func() []string { return []string{"rolled-back"} })
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	must(t, a.Update(func(txn Txn) error { return txn.Set([]byte("k"), []byte("a"), 0) },
		func() []string { return []string{"from-a"} }))
	must(t, b.Update(func(txn Txn) error { return txn.Set([]byte("k"), []byte("b"), 0) },
		func() []string { return []string{"user/o1/u1", "org/o1"} }))
	must(t, b.UpdateNoSync(func(txn Txn) error { return txn.Set([]byte("k"), []byte("b2"), 0) },
		func() []string { return []string{"sess/o1/s1"} }))

	// Notifications arrive in commit order, so a's first is b's commit,
	// not the rollback; b's first is a's commit, not its own.
	if got := strings.Join(ra.next(t), ","); got != "user/o1/u1,org/o1" {
		t.Fatalf("a heard %q first, want b's committed keys", got)
	}
	if got := strings.Join(ra.next(t), ","); got != "sess/o1/s1" {
		t.Fatalf("a heard %q second, want b's UpdateNoSync keys", got)
	}
	if got := strings.Join(rb.next(t), ","); got != "from-a" {
		t.Fatalf("b heard %q first, want a's keys", got)
	}

	// A list too long for one notification, or a key that cannot travel
	// on one line, becomes "*".
	long := make([]string, 1000)
	for i := range long {
		long[i] = fmt.Sprintf("user/org/%032d", i)
	}
	for _, keys := range [][]string{long, {"ok", "two\nlines"}} {
		must(t, b.Update(func(txn Txn) error { return txn.Set([]byte("k"), []byte("c"), 0) },
			func() []string { return keys }))
		if got := strings.Join(ra.next(t), ","); got != "*" {
			t.Fatalf("a heard %.80q, want *", got)
		}
	}
	// No keys, no notification: the next one a hears is this one's.
	must(t, b.Update(func(txn Txn) error { return txn.Set([]byte("k"), []byte("d"), 0) }, nil))
	must(t, b.Update(func(txn Txn) error { return txn.Set([]byte("k"), []byte("e"), 0) },
		func() []string { return nil }))
	must(t, b.Update(func(txn Txn) error { return txn.Set([]byte("k"), []byte("f"), 0) },
		func() []string { return []string{"last"} }))
	if got := strings.Join(ra.next(t), ","); got != "last" {
		t.Fatalf("a heard %q, want last", got)
	}
	// Nothing made the listener give its connection up. (A stall of the
	// machine longer than heartbeatMaxAge may turn it not live for a
	// moment, as it should, so its states are not what is checked.)
	if n := a.listens.Load(); n != 1 {
		t.Fatalf("the listener opened %d connections, want 1", n)
	}
}

// A PostgreSQL restart is survived without reopening: transactions retry
// on a new connection, the listener reports the gap and comes back.
func TestPostgresRestart(t *testing.T) {
	onceOnly(t)
	srv := pgtest.StartServer(t)
	a := openPostgresAt(t, srv.DSN(), "ssogate")
	ra := subscribe(a)
	put(t, a, "before", "1")

	must(t, srv.Restart())
	put(t, a, "after restart", "2") // the pool's connections are all dead now
	wantValue(t, a, "before", "1")
	if live := ra.state(t); live {
		t.Fatal("listener said live, want the loss first")
	}
	if live := ra.state(t); !live {
		t.Fatal("listener did not come back")
	}
	if n := a.listens.Load(); n < 2 {
		t.Fatalf("the listener opened %d connections across a restart, want a new one", n)
	}
	b := openPostgresAt(t, srv.DSN(), "ssogate")
	must(t, b.Update(func(txn Txn) error { return txn.Set([]byte("k"), []byte("b"), 0) },
		func() []string { return []string{"after-restart"} }))
	if got := strings.Join(ra.next(t), ","); got != "after-restart" {
		t.Fatalf("after the restart a heard %q", got)
	}

	// A crash (SIGKILL of the postmaster): committed writes survive it.
	must(t, srv.Kill())
	must(t, srv.Start())
	put(t, a, "after kill", "3")
	wantValue(t, b, "after restart", "2")
	wantValue(t, b, "after kill", "3")
	if live := ra.state(t); live {
		t.Fatal("listener said live after the kill, want the loss first")
	}
	if live := ra.state(t); !live {
		t.Fatal("listener did not come back after the kill")
	}

	// A transaction started while the server is down waits for it,
	// within the reconnect budget (raised here: the machine is slow).
	a.retryBudget = hangGuard
	must(t, srv.Stop())
	done := make(chan error, 1)
	go func() {
		done <- a.Update(func(txn Txn) error { return txn.Set([]byte("while down"), []byte("4"), 0) }, nil)
	}()
	time.Sleep(300 * time.Millisecond) // let it fail a few times; not asserted
	must(t, srv.Start())
	select {
	case err := <-done:
		must(t, err)
	case <-time.After(hangGuard):
		t.Fatal("Update did not finish after the server came back")
	}
	wantValue(t, b, "while down", "4")
}

// A lost connection poisons the transaction (the iterator stops, the
// error reaches View) and the transaction is run again from scratch.
func TestPostgresLostConnectionRetriesTransaction(t *testing.T) {
	onceOnly(t)
	srv := pgtest.StartServer(t)
	p := openPostgresAt(t, srv.DSN(), "ssogate")
	const n = 300 // more than one page
	must(t, p.Update(func(txn Txn) error {
		for i := range n {
			if err := txn.Set(fmt.Appendf(nil, "r/%03d", i), []byte("v"), 0); err != nil {
				return err
			}
		}
		return nil
	}, nil))
	var seen []int
	attempts := 0
	must(t, p.View(func(txn Txn) error {
		attempts++
		it := txn.Iterator(IterOptions{Prefix: []byte("r/")})
		defer it.Close()
		count := 0
		for it.Seek([]byte("r/")); it.Valid(); it.Next() {
			if attempts == 1 && count == 10 {
				if err := srv.Restart(); err != nil {
					return err
				}
			}
			count++
		}
		seen = append(seen, count)
		return nil
	}))
	if attempts != 2 || seen[0] >= n || seen[1] != n {
		t.Fatalf("attempts %d, keys seen per attempt %v; want the first cut short, the second complete (%d)", attempts, seen, n)
	}
	var errs []error
	must(t, p.Update(func(txn Txn) error {
		if _, err := txn.Get([]byte("r/000")); err != nil {
			return err
		}
		if len(errs) == 0 {
			if err := srv.Restart(); err != nil {
				return err
			}
		}
		_, err := txn.Get([]byte("r/001"))
		if err != nil {
			// Poisoned: every later call fails with the same error.
			_, again := txn.Get([]byte("r/002"))
			errs = append(errs, err, again, txn.Set([]byte("x"), []byte("y"), 0))
		}
		return err
	}, nil))
	if len(errs) != 3 || errs[0] == nil || errs[1] != errs[0] || errs[2] != errs[0] {
		t.Fatalf("errors in the poisoned transaction: %v", errs)
	}
}

// Replicas starting together on a fresh schema migrate it once.
func TestPostgresConcurrentFirstOpen(t *testing.T) {
	onceOnly(t)
	dsn, schema := pgtest.Schema(t)
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := OpenPostgres(context.Background(), PostgresOptions{DSN: dsn, Schema: schema})
			if err == nil {
				err = p.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("open %d: %v", i, err)
		}
	}
	if got := sqlQuery[int64](t, dsn, "SELECT count(*) FROM "+pgx.Identifier{schema, "schema_version"}.Sanitize()); got != int64(pgschema.Latest()) {
		t.Fatalf("%d migrations recorded, want %d", got, pgschema.Latest())
	}
	// A schema that did not exist is created.
	fresh := schema + "_new"
	openPostgresAt(t, dsn, fresh)
	t.Cleanup(func() { sqlExec(t, dsn, "DROP SCHEMA IF EXISTS "+fresh+" CASCADE") })
}

// A database migrated by a newer gateway is refused, not half-understood.
func TestPostgresRefusesNewerSchema(t *testing.T) {
	onceOnly(t)
	dsn, schema := pgtest.Schema(t)
	must(t, openPostgresAt(t, dsn, schema).Close())
	vt := pgx.Identifier{schema, "schema_version"}.Sanitize()
	sqlExec(t, dsn, fmt.Sprintf("INSERT INTO %s (version, name) VALUES (%d, 'from the future')", vt, pgschema.Latest()+1))
	_, err := OpenPostgres(context.Background(), PostgresOptions{DSN: dsn, Schema: schema})
	if err == nil || !strings.Contains(err.Error(), "upgrade the gateway") {
		t.Fatalf("OpenPostgres on a newer schema: %v", err)
	}
}

// The DSN's password appears in no error and no log line.
func TestPostgresDSNNotDisclosed(t *testing.T) {
	onceOnly(t)
	const secret = "Sw0rdf1sh-secret"
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	closedPort := l.Addr().(*net.TCPAddr).Port
	must(t, l.Close())

	dsn, schema := pgtest.Schema(t)
	for _, bad := range []string{
		fmt.Sprintf("host=127.0.0.1 port=%d user=gw password=%s dbname=sso connect_timeout=5", closedPort, secret),
		fmt.Sprintf("postgres://gw:%s@127.0.0.1:%d/sso?connect_timeout=5", secret, closedPort),
		"postgres://gw:" + secret + "@127.0.0.1:notaport/sso",
		"host=127.0.0.1 password='" + secret + " port=x",
		dsn + " dbname=no_such_database password=" + secret,
	} {
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		_, err := OpenPostgres(ctx, PostgresOptions{DSN: bad, Schema: schema, Logger: log})
		cancel()
		if err == nil {
			t.Fatal("OpenPostgres succeeded on a bad DSN")
		}
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("the error shows the password: %v", err)
		}
	}
	// A working backend whose server goes away logs its retries.
	srv := pgtest.StartServer(t)
	p, err := OpenPostgres(context.Background(), PostgresOptions{DSN: srv.DSN() + " password=" + secret, Logger: log})
	must(t, err)
	defer p.Close()
	p.retryBudget = time.Second
	subscribe(p)
	must(t, srv.Stop())
	if err := p.Update(func(txn Txn) error { return txn.Set([]byte("k"), []byte("v"), 0) }, nil); err == nil {
		t.Fatal("Update succeeded with the server down")
	} else if strings.Contains(err.Error(), secret) {
		t.Fatalf("the error shows the password: %v", err)
	}
	if logs.Len() == 0 {
		t.Fatal("nothing logged about the lost server")
	}
	for _, e := range logs.All() {
		line := e.Message + fmt.Sprint(e.ContextMap())
		if strings.Contains(line, secret) {
			t.Fatalf("a log line shows the password: %s", line)
		}
	}
}

func TestPostgresOptionsChecked(t *testing.T) {
	onceOnly(t)
	for _, o := range []PostgresOptions{
		{DSN: ""},
		{DSN: "host=127.0.0.1", Schema: "Ssogate"},
		{DSN: "host=127.0.0.1", Schema: `x"; DROP SCHEMA public; --`},
		{DSN: "host=127.0.0.1", Schema: "pg_catalog"},
		{DSN: "host=127.0.0.1", Schema: "9lives"},
		{DSN: "host=127.0.0.1", Schema: strings.Repeat("a", 64)},
		{DSN: "host=127.0.0.1", MaxConns: -1},
	} {
		if _, err := OpenPostgres(context.Background(), o); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", o, err)
		}
	}
}

// Maintain removes expired rows (not merely hides them) and keeps the rest.
func TestPostgresMaintain(t *testing.T) {
	onceOnly(t)
	dsn, schema := pgtest.Schema(t)
	p := openPostgresAt(t, dsn, schema)
	must(t, p.Update(func(txn Txn) error {
		for i := range 2500 {
			if err := txn.Set(fmt.Appendf(nil, "old/%d", i), []byte("x"), 1); err != nil {
				return err
			}
		}
		if err := txn.Set([]byte("live"), []byte("x"), uint64(time.Now().Add(time.Hour).Unix())); err != nil {
			return err
		}
		return txn.Set([]byte("forever"), []byte("x"), 0)
	}, nil))
	must(t, p.Maintain())
	kv := pgx.Identifier{schema, "kv"}.Sanitize()
	if got := sqlQuery[string](t, dsn, "SELECT string_agg(convert_from(k, 'UTF8'), ',' ORDER BY k) FROM "+kv); got != "forever,live" {
		t.Fatalf("rows after Maintain: %s", got)
	}
}

// cutProxy forwards TCP connections to a PostgreSQL server. Armed with n,
// it forwards the n-th client write from then on that starts with a Bind
// message (one round trip of a transaction whose statements are already
// prepared), and cuts the connection before the server's answer reaches
// the client: the answer is lost, as in a network failure mid-commit.
type cutProxy struct {
	l      net.Listener
	target string

	mu        sync.Mutex
	countdown int           // Bind-led writes left before the cut; 0: disarmed
	answered  chan struct{} // closed when the server answered the cut write
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	p := &cutProxy{l: l, target: target}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *cutProxy) arm(n int) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.countdown = n
	p.answered = make(chan struct{})
	return p.answered
}

func (p *cutProxy) serve(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	var cut atomic.Bool
	var answered chan struct{}
	go func() { // server to client, dropped once cut
		buf := make([]byte, 64<<10)
		for {
			n, err := server.Read(buf)
			if n > 0 && cut.Load() {
				close(answered)
				server.Close()
				return
			}
			if n > 0 {
				if _, err := client.Write(buf[:n]); err != nil {
					server.Close()
					return
				}
			}
			if err != nil {
				client.Close()
				return
			}
		}
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			if buf[0] == 'B' {
				p.mu.Lock()
				if p.countdown > 0 {
					p.countdown--
					if p.countdown == 0 {
						answered = p.answered
						cut.Store(true)
					}
				}
				p.mu.Unlock()
			}
			if cut.Load() {
				// The client will never see the answer; the other
				// goroutine closes the server side once it came.
				client.Close()
				_, _ = server.Write(buf[:n])
				return
			}
			if _, err := server.Write(buf[:n]); err != nil {
				client.Close()
				return
			}
		}
		if err != nil {
			server.Close()
			return
		}
	}
}

// A connection lost while COMMIT is in flight leaves the outcome unknown:
// Update says so and does not run the transaction again (it might apply
// twice). Lost before COMMIT was sent, the transaction is simply retried.
func TestPostgresCommitInFlight(t *testing.T) {
	onceOnly(t)
	dsn, schema := pgtest.Schema(t)
	cfg, err := pgx.ParseConfig(dsn)
	must(t, err)
	proxy := newCutProxy(t, fmt.Sprintf("%s:%d", cfg.Host, cfg.Port))
	_, port, _ := net.SplitHostPort(proxy.l.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	p, err := OpenPostgres(ctx, PostgresOptions{DSN: dsn + " host=127.0.0.1 port=" + port, Schema: schema, MaxConns: 1})
	must(t, err)
	defer p.Close()

	runs := 0
	increment := func(txn Txn) error {
		runs++
		v, err := txn.Get([]byte("n"))
		if errors.Is(err, ErrNoKey) {
			v, err = []byte("0"), nil
		}
		if err != nil {
			return err
		}
		var n int
		fmt.Sscan(string(v), &n)
		return txn.Set([]byte("n"), fmt.Append(nil, n+1), 0)
	}
	must(t, p.Update(increment, nil)) // prepares the statements: n = 1
	wantValue(t, p, "n", "1")

	// Cut after the first round trip (BEGIN and the read) was sent.
	runs = 0
	answered := proxy.arm(1)
	must(t, p.Update(increment, nil))
	<-answered
	if runs != 2 {
		t.Fatalf("transaction ran %d times, want 2 (cut, then retried)", runs)
	}
	wantValue(t, p, "n", "2")
	must(t, p.Update(increment, nil)) // prepares again on the new connection: n = 3

	// Cut after the second round trip (the write and COMMIT) was sent.
	runs = 0
	answered = proxy.arm(2)
	err = p.Update(increment, nil)
	<-answered
	if !errors.Is(err, ErrCommitUnknown) || errors.Is(err, ErrTxnConflict) {
		t.Fatalf("Update with COMMIT's answer lost: %v, want ErrCommitUnknown", err)
	}
	if runs != 1 {
		t.Fatalf("transaction ran %d times, want once", runs)
	}
	// The server did get COMMIT (it answered): the write is there, once.
	wantValue(t, p, "n", "4")
}

// A transaction that waits for a connection while the pool is full (here:
// one nested in another on a pool of one) fails once the wait is over; it
// is not taken for a lost connection and retried.
func TestPostgresPoolExhausted(t *testing.T) {
	onceOnly(t)
	dsn, schema := pgtest.Schema(t)
	p := openPostgresWith(t, PostgresOptions{DSN: dsn, Schema: schema, MaxConns: 1})
	p.acquireWait = 500 * time.Millisecond
	inner := 0
	err := p.Update(func(txn Txn) error {
		if _, err := txn.Get([]byte("k")); !errors.Is(err, ErrNoKey) { // holds the connection
			return err
		}
		return p.View(func(v Txn) error {
			inner++
			_, err := v.Get([]byte("k"))
			return err
		})
	}, nil)
	if err == nil || !strings.Contains(err.Error(), "no free connection") {
		t.Fatalf("nested transaction on a full pool: %v", err)
	}
	if inner != 1 {
		t.Fatalf("nested fn ran %d times, want once (no retry)", inner)
	}
	put(t, p, "k", "the pool works again")
}

// A listener with no changes to hear still hears its own heartbeats
// (they replace the ping of a quiet connection), and that neither drops
// the connection nor loses a notification.
func TestPostgresListenerPings(t *testing.T) {
	onceOnly(t)
	dsn, schema := pgtest.Schema(t)
	a, b := openPostgresAt(t, dsn, schema), openPostgresAt(t, dsn, schema)
	ra := subscribe(a)
	deadline := time.Now().Add(hangGuard)
	for a.pings.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("the listener never heard its heartbeats")
		}
		time.Sleep(10 * time.Millisecond)
	}
	must(t, b.Update(func(txn Txn) error { return txn.Set([]byte("k"), []byte("v"), 0) },
		func() []string { return []string{"after-pings"} }))
	if got := strings.Join(ra.next(t), ","); got != "after-pings" {
		t.Fatalf("heard %q", got)
	}
	if n := a.listens.Load(); n != 1 {
		t.Fatalf("the listener opened %d connections while pinging, want 1", n)
	}
}

// A single-read view answers as View does, refuses a second read (which
// would see another snapshot), and leaves no transaction open: on a pool
// of one connection, the next transactions run.
func TestPostgresViewSingle(t *testing.T) {
	onceOnly(t)
	dsn, schema := pgtest.Schema(t)
	p := openPostgresWith(t, PostgresOptions{DSN: dsn, Schema: schema, MaxConns: 1})
	put(t, p, "a", "1")
	put(t, p, "b", "2")
	must(t, p.ViewSingle(func(txn Txn) error {
		if v, err := txn.Get([]byte("a")); err != nil || string(v) != "1" {
			return fmt.Errorf("a = %q, %v", v, err)
		}
		return nil
	}))
	must(t, p.ViewSingle(func(txn Txn) error {
		vals, err := getMany(txn, [][]byte{[]byte("b"), []byte("none"), []byte("a")})
		if err != nil || string(vals[0]) != "2" || vals[1] != nil || string(vals[2]) != "1" {
			return fmt.Errorf("getMany = %q, %v", vals, err)
		}
		return nil
	}))
	err := p.ViewSingle(func(txn Txn) error {
		if _, err := txn.Get([]byte("a")); err != nil {
			return err
		}
		_, err := txn.Get([]byte("b"))
		return err
	})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("second read of a single-read view: %v, want ErrInvalid", err)
	}
	if err := p.ViewSingle(func(txn Txn) error { return txn.Set([]byte("a"), []byte("x"), 0) }); err == nil {
		t.Fatal("a write in a single-read view was accepted")
	}
	put(t, p, "a", "3")
	wantValue(t, p, "a", "3")
}

// The store's connections do not scan kv whole: see OpenPostgres.
func TestPostgresSessionSettings(t *testing.T) {
	onceOnly(t)
	dsn, schema := pgtest.Schema(t)
	p := openPostgresAt(t, dsn, schema)
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	var v string
	must(t, p.pool.QueryRow(ctx, "SHOW enable_seqscan").Scan(&v))
	if v != "off" {
		t.Fatalf("enable_seqscan = %q on a pooled connection, want off", v)
	}
}
