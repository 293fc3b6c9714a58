package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ssogate/ssogate/store/pgtest"
)

// tcpProxy forwards connections to a server and can black-hole them: the
// bytes stop flowing both ways, and new connections hang, as with a
// peer or a middlebox that vanished without a reset. Nothing is dropped:
// healing lets what waited through.
type tcpProxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	closed chan struct{} // nil while traffic flows; closed by heal
	conns  []net.Conn
}

func startProxy(t testing.TB, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	p := &tcpProxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *tcpProxy) handle(c net.Conn) {
	p.wait()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, c, up)
	p.mu.Unlock()
	go p.pipe(up, c)
	p.pipe(c, up)
}

// pipe copies src to dst, holding each chunk while black-holed.
func (p *tcpProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.wait()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *tcpProxy) wait() {
	p.mu.Lock()
	ch := p.closed
	p.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

func (p *tcpProxy) blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed == nil {
		p.closed = make(chan struct{})
	}
}

func (p *tcpProxy) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed != nil {
		close(p.closed)
		p.closed = nil
	}
}

func (p *tcpProxy) close() {
	p.heal()
	_ = p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
}

// proxiedDSN points dsn at the proxy. A short connect timeout keeps the
// reconnects through the black hole from taking the default 10 s each.
func proxiedDSN(t testing.TB, dsn string, proxy *tcpProxy) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		must(t, err)
		u.Host = proxy.addr()
		q := u.Query()
		q.Set("connect_timeout", "2")
		q.Del("host")
		q.Del("port")
		u.RawQuery = q.Encode()
		return u.String()
	}
	host, port, err := net.SplitHostPort(proxy.addr())
	must(t, err)
	// In the key=value form, later keys win.
	return dsn + " host=" + host + " port=" + port + " connect_timeout=2"
}

func serverAddr(t testing.TB, dsn string) string {
	t.Helper()
	cfg, err := pgconn.ParseConfig(dsn)
	must(t, err)
	if strings.HasPrefix(cfg.Host, "/") {
		t.Skip("the test server listens on a unix socket; the proxy needs TCP")
	}
	return net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port))
}

// pollUntil polls cond every 10 ms until it holds, failing after bound.
func pollUntil(t testing.TB, bound time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > bound {
			t.Fatalf("%s: not within %v", what, bound)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// A listener whose connection is black-holed (half-open TCP: no reset,
// no error, nothing delivered) turns the Store's reuse off within about
// heartbeatMaxAge, so a revocation on another replica cannot stay unseen
// longer; healed, it comes back by itself.
func TestPostgresListenerBlackholed(t *testing.T) {
	onceOnly(t)
	dsn, schema := pgtest.Schema(t)
	proxy := startProxy(t, serverAddr(t, dsn))
	b := openPostgresAt(t, proxiedDSN(t, dsn, proxy), schema)
	s, err := OpenBackend(b, Options{Logger: zap.NewNop(), GCInterval: -1})
	must(t, err)
	t.Cleanup(func() { _ = s.Close() })

	user := WatchUser("o1", "u1")
	pollUntil(t, hangGuard, "live at start", func() bool { return !s.Changed(s.Watch(user)) })
	w := s.Watch(user)

	proxy.blackhole()
	// The bound is 1 s; the test allows 1 s more for a loaded
	// machine (it measures the listener noticing, not the database).
	took := pollUntil(t, 2*time.Second, "reuse off after the black hole", func() bool { return s.Changed(w) })
	t.Logf("reuse off %v after the black hole", took)
	// Still off a while later: nothing comes through, the reconnects
	// hang in the black hole.
	time.Sleep(heartbeatMaxAge)
	if !s.Changed(s.Watch(user)) {
		t.Fatal("live again while black-holed")
	}

	proxy.heal()
	pollUntil(t, hangGuard, "live again after healing", func() bool { return !s.Changed(s.Watch(user)) })
	// The store works through the healed path.
	put(t, b, "after heal", "1")
	wantValue(t, b, "after heal", "1")
}

// A backend whose own heartbeats never come back (here: it listens on
// another channel, as behind a pooler in transaction mode, which takes
// LISTEN and delivers nothing) is never live, though its heartbeats are
// sent and its connection is fine.
func TestPostgresListenerWithoutHeartbeatsNeverLive(t *testing.T) {
	onceOnly(t)
	dsn, schema := pgtest.Schema(t)
	p := openPostgresAt(t, dsn, schema)

	// A plain LISTEN on the real channel sees p's heartbeats go out.
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	raw, err := pgx.Connect(ctx, dsn)
	must(t, err)
	defer raw.Close(context.Background())
	_, err = raw.Exec(ctx, "LISTEN "+pgx.Identifier{p.channel}.Sanitize())
	must(t, err)

	r := &recorder{changes: make(chan []string, 100), states: make(chan bool, 100)}
	p.subscribe(p.channel+"_elsewhere", func(keys []string) { r.changes <- keys }, func(live bool) { r.states <- live })
	// Subscribe has returned: the verdict is in.
	select {
	case live := <-r.states:
		if live {
			t.Fatal("said live without a heartbeat")
		}
	default:
		t.Fatal("Subscribe returned without a verdict")
	}
	n, err := raw.WaitForNotification(ctx)
	must(t, err)
	if !strings.HasPrefix(n.Payload, heartbeatTag+p.id+" ") {
		t.Fatalf("notification %q, want a heartbeat of %s", n.Payload, p.id)
	}
	// Longer than listenDeadAfter, so that the listener has also given
	// its connection up and taken a new one, which is no better.
	deadline := time.After(listenDeadAfter + 2*time.Second)
	for {
		select {
		case live := <-r.states:
			if live {
				t.Fatal("said live, though no heartbeat of its own came back")
			}
		case keys := <-r.changes:
			t.Fatalf("change %q delivered from nowhere", keys)
		case <-deadline:
			return
		}
	}
}

// Heartbeats, this instance's or another's, never reach onChange (the
// Store would take one for "everything changed"), and a real change list
// still does.
func TestPostgresHeartbeatsAreNotChanges(t *testing.T) {
	onceOnly(t)
	dsn, schema := pgtest.Schema(t)
	a, b := openPostgresAt(t, dsn, schema), openPostgresAt(t, dsn, schema)
	ra, rb := subscribe(a), subscribe(b)

	// Wait until a's listener has seen several of b's heartbeats go by
	// (a plain listener sees them in the same order as a does).
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	raw, err := pgx.Connect(ctx, dsn)
	must(t, err)
	defer raw.Close(context.Background())
	_, err = raw.Exec(ctx, "LISTEN "+pgx.Identifier{a.channel}.Sanitize())
	must(t, err)
	seen := map[string]int{}
	for seen[a.id] < 3 || seen[b.id] < 3 {
		n, err := raw.WaitForNotification(ctx)
		must(t, err)
		if rest, ok := strings.CutPrefix(n.Payload, heartbeatTag); ok {
			id, _, _ := strings.Cut(rest, " ")
			seen[id]++
		}
	}
	must(t, b.Update(func(txn Txn) error { return txn.Set([]byte("k"), []byte("v"), 0) },
		func() []string { return []string{changeFormat, "1f"} }))
	if got := strings.Join(ra.next(t), ","); got != changeFormat+",1f" {
		t.Fatalf("a's first change is %q, want b's commit", got)
	}
	select {
	case keys := <-rb.changes:
		t.Fatalf("b heard %q: its own commit, or a heartbeat", keys)
	default:
	}

	// Through a Store: heartbeats move nothing.
	s, err := OpenBackend(openPostgresAt(t, dsn, schema), Options{Logger: zap.NewNop(), GCInterval: -1})
	must(t, err)
	t.Cleanup(func() { _ = s.Close() })
	pollUntil(t, hangGuard, "live", func() bool { return !s.Changed(s.Watch(WatchOrg("o1"))) })
	// Several heartbeats of three instances come and go in each window; a
	// heartbeat taken for a change would move the epoch in every one. A
	// liveness flap on a starved machine moves it too, hence the retries.
	for try := 1; ; try++ {
		before := s.marks.epoch.Load()
		time.Sleep(4 * heartbeatEvery)
		got := s.marks.epoch.Load()
		if got == before {
			break
		}
		if try == 3 {
			t.Fatalf("the epoch moved in each of %d windows without a change (last: %d to %d)", try, before, got)
		}
	}
}

// Connection errors say where and why, never the DSN's user or database:
// a URL whose password holds an unescaped '/' puts the rest of the
// password into the database name.
func TestPostgresConnectErrorsRedacted(t *testing.T) {
	onceOnly(t)
	const secret = "Sw0rdf1sh-secret"
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	dsn, schema := pgtest.Schema(t)
	addr := serverAddr(t, dsn)
	host, port, _ := net.SplitHostPort(addr)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	closedPort := l.Addr().(*net.TCPAddr).Port
	must(t, l.Close())

	for _, c := range []struct{ dsn, where string }{
		// Meant as user "127.0.0.1", password "<port>/Sw0rdf1sh-secret" at
		// db.example: the URL reads host 127.0.0.1, that port, and the
		// database "Sw0rdf1sh-secret@db.example/sso".
		{fmt.Sprintf("postgres://%s:%s/%s@db.example/sso?connect_timeout=5", host, port, secret), addr},
		{fmt.Sprintf("postgres://127.0.0.1:%d/%s@db.example/sso?connect_timeout=5", closedPort, secret), fmt.Sprintf("127.0.0.1:%d", closedPort)},
		{fmt.Sprintf("host=%s port=%s user=%s dbname=%s connect_timeout=5", host, port, secret, secret), addr},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		_, err := OpenPostgres(ctx, PostgresOptions{DSN: c.dsn, Schema: schema, Logger: log})
		cancel()
		if err == nil {
			t.Fatalf("OpenPostgres succeeded")
		}
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("the error shows the secret: %v", err)
		}
		if !strings.Contains(err.Error(), c.where) {
			t.Fatalf("the error does not say where: %v", err)
		}
		t.Logf("%v", err)
	}

	// A working backend whose database vanishes: the transaction's error
	// and the retries' log lines redact the server's refusal too.
	srv := pgtest.StartServer(t)
	sqlExec(t, srv.DSN(), "CREATE DATABASE "+pgx.Identifier{secret}.Sanitize())
	p, err := OpenPostgres(context.Background(), PostgresOptions{DSN: srv.DSN() + " dbname=" + secret, Logger: log})
	must(t, err)
	defer p.Close()
	subscribe(p)
	p.pool.Reset()
	sqlExec(t, srv.DSN(), "DROP DATABASE "+pgx.Identifier{secret}.Sanitize()+" WITH (FORCE)")
	err = p.Update(func(txn Txn) error { return txn.Set([]byte("k"), []byte("v"), 0) }, nil)
	if err == nil {
		t.Fatal("Update succeeded on a dropped database")
	}
	if strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "3D000") {
		t.Fatalf("Update on a dropped database: %v", err)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "3D000" || strings.Contains(pgErr.Message, secret) {
		t.Fatalf("the server error is not kept (redacted) for errors.As: %v", err)
	}
	_ = p.Close()
	for _, e := range logs.All() {
		line := e.Message + fmt.Sprint(e.ContextMap())
		if strings.Contains(line, secret) {
			t.Fatalf("a log line shows the secret: %s", line)
		}
	}
}
