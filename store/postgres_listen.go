package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
)

// Liveness of the change listener.
//
// A listener that merely holds a connection proves nothing: a half-open
// TCP connection (a peer or a middlebox that went away without a reset)
// stays "connected" for minutes, and a pooler in transaction mode
// (PgBouncer) accepts LISTEN and never delivers a notification. Either
// way other replicas' revocations would go unseen while the Store keeps
// reusing re-checks. So a subscribed backend NOTIFYs its own channel
// every heartbeatEvery, from a connection of its own (outside the pool,
// so that a pool exhausted by requests cannot starve it), with its send
// time; the listener counts as live only while the newest heartbeat of
// its own that it received was sent less than heartbeatMaxAge ago.
//
// Why that bounds a revocation's delay on another replica by
// heartbeatMaxAge: PostgreSQL delivers a session's notifications in the
// order their transactions committed. Take a revocation acknowledged on
// replica B at time T (so committed before T) and a request on replica A
// at time t >= T + heartbeatMaxAge. If A's listener is live at t, it has
// received a heartbeat that A sent at some s > t - heartbeatMaxAge >= T,
// whose NOTIFY therefore committed after the revocation; so the
// revocation's notification was delivered before that heartbeat, and
// the listener handed it to the Store (onChange runs before the next
// notification is read) before it recorded the heartbeat. Either A has
// applied the revocation or it is not live, and a Store that is not live
// sends every request to the full re-check. Send times and the check use
// A's own monotonic clock: no clock skew between machines enters. What
// remains is scheduling: the listener is woken at the instant its newest
// heartbeat turns stale, so a starved process may notice a few
// milliseconds late.

const (
	// heartbeatEvery is how often a subscribed backend sends a heartbeat.
	heartbeatEvery = 250 * time.Millisecond
	// heartbeatMaxAge is how old the newest received heartbeat may be for
	// the listener to count as live: the bound on how late another
	// replica's revocation can take effect here.
	heartbeatMaxAge = time.Second
	// listenDeadAfter is how long a connection that delivers no fresh
	// heartbeat is kept before it is replaced by a new one: a half-open
	// connection never recovers by itself.
	listenDeadAfter = 5 * time.Second

	// heartbeatTag opens a heartbeat's payload; change lists open with an
	// instance ID (hex digits), so the two never meet. A heartbeat is one
	// line, so a listener of a version without heartbeats, which ignores
	// payloads without a change line, ignores them too.
	heartbeatTag = "heartbeat "
)

// Subscribe implements Backend. One connection of its own, outside the
// pool, LISTENs on the schema's channel; notifications that this instance
// sent are skipped, and so are heartbeats (see above), which decide
// whether the listener is live. Subscribe returns once the first
// heartbeat came back (the listener is live), or after calling
// onState(false) if none did within heartbeatMaxAge or LISTEN failed;
// the listener keeps trying, and calls onState(true) when its heartbeats
// arrive again. After a lost connection or stale heartbeats it calls
// onState(false): what was committed meanwhile may not have been
// delivered. Only the first call registers a listener.
func (p *Postgres) Subscribe(onChange func(keys []string), onState func(live bool)) {
	p.subscribe(p.channel, onChange, onState)
}

// subscribe is Subscribe LISTENing on channel: tests listen elsewhere to
// get a listener whose heartbeats are never delivered.
func (p *Postgres) subscribe(channel string, onChange func(keys []string), onState func(live bool)) {
	if !p.subscribed.CompareAndSwap(false, true) {
		p.log.Error("postgres: Subscribe called twice; the second listener is ignored")
		return
	}
	l := &pgListener{
		p:        p,
		channel:  channel,
		base:     time.Now(),
		ours:     heartbeatTag + p.id + " ",
		onChange: onChange,
		onState:  onState,
		live:     true, // the Store starts live; see run for the first verdict
		ready:    make(chan struct{}),
	}
	ctx, cancel := context.WithTimeout(p.ctx, listenConnectBudget)
	conn, err := l.listen(ctx)
	cancel()
	if err != nil {
		p.log.Warn("change listener not connected; caches stay off until it is", zap.Error(err))
		l.setLive(false)
	} else {
		l.conn, l.since = conn, time.Now()
	}
	p.wg.Add(2)
	go p.sendHeartbeats(l.ours, l.base)
	go l.run()
	select {
	case <-l.ready:
	case <-p.ctx.Done():
	}
}

// pgListener is the state of the listening goroutine; only run touches
// it after Subscribe.
type pgListener struct {
	p        *Postgres
	channel  string
	base     time.Time // heartbeats carry their send time as an offset from it
	ours     string    // the prefix of this instance's heartbeats
	onChange func([]string)
	onState  func(bool)

	conn   *pgx.Conn
	since  time.Time // when conn's LISTEN took effect
	newest time.Time // send time of the newest heartbeat received on conn
	live   bool      // what onState was last told
	quiet  bool      // a connection without heartbeats was reported

	ready     chan struct{} // closed at the first verdict, for Subscribe
	readyOnce sync.Once
}

// listen opens the listener's connection and LISTENs.
func (l *pgListener) listen(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, l.p.connCfg)
	if err != nil {
		return nil, fmt.Errorf("store: postgres: listener: %w", safeConnectError(err))
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{l.channel}.Sanitize()); err != nil {
		_ = conn.Close(ctx)
		return nil, fmt.Errorf("store: postgres: listener: LISTEN: %w", err)
	}
	l.p.listens.Add(1)
	return conn, nil
}

// run delivers notifications and judges liveness until Close.
func (l *pgListener) run() {
	defer l.p.wg.Done()
	defer l.closeConn()
	backoff := minRetryBackoff
	for {
		if l.conn == nil {
			if !l.reconnect(&backoff) {
				return
			}
		}
		ctx, cancel := context.WithDeadline(l.p.ctx, l.wakeAt())
		n, err := l.conn.WaitForNotification(ctx)
		cancel()
		now := time.Now()
		switch {
		case err == nil:
			l.receive(n, now)
		case l.p.ctx.Err() != nil:
			return
		case errors.Is(err, context.DeadlineExceeded) && !l.conn.IsClosed():
			// Nothing by the time the newest heartbeat turns stale, or
			// the connection is given up: judged below.
		default:
			l.p.log.Warn("change listener lost its connection; caches are off until it is back",
				zap.Error(safeConnectError(err)))
			l.drop()
			continue
		}
		l.judge(now)
	}
}

// reconnect opens a new listening connection, with a capped backoff
// between tries; false when the backend is closed. The listener is not
// live yet: that takes a heartbeat through the new connection.
func (l *pgListener) reconnect(backoff *time.Duration) bool {
	for {
		select {
		case <-l.p.ctx.Done():
			return false
		case <-time.After(*backoff):
		}
		*backoff = min(2**backoff, maxListenBackoff)
		ctx, cancel := context.WithTimeout(l.p.ctx, listenConnectBudget)
		c, err := l.listen(ctx)
		cancel()
		if err == nil {
			l.conn, l.since, l.newest = c, time.Now(), time.Time{}
			*backoff = minRetryBackoff
			l.p.log.Debug("change listener reconnected; waiting for a heartbeat")
			return true
		}
		if l.p.ctx.Err() != nil {
			return false
		}
		l.p.log.Debug("change listener: reconnect failed", zap.Error(err))
	}
}

// wakeAt is when run must look again even if nothing arrives: when a live
// listener's newest heartbeat turns stale, or when a listener that is not
// live gives its connection up.
func (l *pgListener) wakeAt() time.Time {
	ref := l.newest
	if ref.IsZero() {
		ref = l.since
	}
	if l.live {
		return ref.Add(heartbeatMaxAge)
	}
	return ref.Add(listenDeadAfter)
}

// receive handles one notification. Heartbeats only move the newest send
// time (never onChange: the Store would take one for "everything
// changed"); other instances' heartbeats, which carry their clocks, are
// ignored.
func (l *pgListener) receive(n *pgconn.Notification, now time.Time) {
	if n == nil || n.Channel != l.channel {
		return
	}
	if strings.HasPrefix(n.Payload, heartbeatTag) {
		rest, ok := strings.CutPrefix(n.Payload, l.ours)
		if !ok {
			return
		}
		us, err := strconv.ParseInt(rest, 10, 64)
		if err != nil || us < 0 {
			return
		}
		sent := l.base.Add(time.Duration(us) * time.Microsecond)
		// A send time in the future was not sent by this process: it
		// must not extend liveness.
		if sent.After(l.newest) && !sent.After(now) {
			l.newest = sent
			l.p.pings.Add(1)
		}
		return
	}
	from, rest, _ := strings.Cut(n.Payload, "\n")
	if from == l.p.id || rest == "" {
		return
	}
	l.onChange(strings.Split(rest, "\n"))
}

// judge tells the Store when liveness changed, and gives up a connection
// that has delivered no fresh heartbeat for listenDeadAfter.
func (l *pgListener) judge(now time.Time) {
	fresh := !l.newest.IsZero() && now.Sub(l.newest) < heartbeatMaxAge
	ref := l.newest
	if ref.IsZero() {
		ref = l.since
	}
	switch {
	case fresh && !l.live:
		l.setLive(true)
		l.quiet = false
		l.p.log.Info("change listener receives its heartbeats again; caches are back on")
	case !fresh && l.live && now.Sub(ref) >= heartbeatMaxAge:
		l.setLive(false)
		l.p.log.Warn("change listener: no heartbeat came back in time; caches are off until they do",
			zap.Duration("max_age", heartbeatMaxAge))
	case !fresh && !l.live && now.Sub(ref) >= listenDeadAfter:
		msg := "change listener: no heartbeat through this connection; reconnecting (a pooler in transaction mode delivers no notifications: use session mode)"
		if l.quiet {
			l.p.log.Debug(msg)
		} else {
			l.p.log.Warn(msg, zap.Duration("waited", listenDeadAfter))
			l.quiet = true
		}
		l.drop()
		return
	}
	if fresh || !l.live {
		l.readyOnce.Do(func() { close(l.ready) })
	}
}

// setLive tells the Store, and records what it was told.
func (l *pgListener) setLive(live bool) {
	l.live = live
	l.onState(live)
	if !live {
		l.readyOnce.Do(func() { close(l.ready) })
	}
}

// drop closes the connection; nothing is delivered until a new one is in.
func (l *pgListener) drop() {
	l.closeConn()
	if l.live {
		l.setLive(false)
	}
}

func (l *pgListener) closeConn() {
	if l.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = l.conn.Close(ctx)
	cancel()
	l.conn = nil
}

// sendHeartbeats NOTIFYs the channel every heartbeatEvery from a
// connection of its own, until Close. A heartbeat is "heartbeat <id>
// <µs since base>": only this process can read the time, on the same
// monotonic clock as the listener's. Failures are logged at debug level
// only: the listener reports their consequence.
func (p *Postgres) sendHeartbeats(prefix string, base time.Time) {
	defer p.wg.Done()
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = conn.Close(ctx)
			cancel()
		}
	}()
	tick := time.NewTicker(heartbeatEvery)
	defer tick.Stop()
	var backoff time.Duration
	var retryAt time.Time
	// The first heartbeat goes at once: Subscribe waits for it.
	for first := true; ; first = false {
		if !first {
			select {
			case <-p.ctx.Done():
				return
			case <-tick.C:
			}
		}
		if conn == nil {
			if time.Now().Before(retryAt) {
				continue
			}
			ctx, cancel := context.WithTimeout(p.ctx, listenConnectBudget)
			c, err := pgx.ConnectConfig(ctx, p.connCfg)
			cancel()
			if err != nil {
				backoff = min(max(2*backoff, minRetryBackoff), maxListenBackoff)
				retryAt = time.Now().Add(backoff)
				if p.ctx.Err() == nil {
					p.log.Debug("heartbeat: connect failed", zap.Error(safeConnectError(err)))
				}
				continue
			}
			conn, backoff = c, 0
		}
		sent := time.Now()
		payload := prefix + strconv.FormatInt(int64(sent.Sub(base)/time.Microsecond), 10)
		// A heartbeat later than heartbeatMaxAge is useless anyway; a send
		// cut short closes the connection, and the next tick opens another.
		// A NOTIFY commits a transaction: without synchronous_commit off
		// each heartbeat would wait for a WAL flush. SET LOCAL, not a
		// session setting, which a pooler could pass on to other clients.
		ctx, cancel := context.WithTimeout(p.ctx, heartbeatMaxAge)
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		b.Queue("SET LOCAL synchronous_commit = off")
		b.Queue("SELECT pg_notify($1, $2)", p.channel, payload)
		b.Queue("COMMIT")
		err := conn.SendBatch(ctx, b).Close()
		cancel()
		if err != nil {
			if p.ctx.Err() == nil {
				p.log.Debug("heartbeat: send failed", zap.Error(safeConnectError(err)))
			}
			cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = conn.Close(cctx)
			ccancel()
			conn = nil
		}
	}
}
