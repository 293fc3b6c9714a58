package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// Subscribe implements Backend. One connection of its own, outside the
// pool, LISTENs on the schema's channel; notifications that this instance
// sent are skipped. It returns once the first LISTEN is in place, or after
// calling onState(false) if that failed (the listener keeps trying, and
// calls onState(true) when it succeeds). After a lost connection it calls
// onState(false), reconnects with a capped backoff, LISTENs again and
// calls onState(true): what was committed in between was not delivered.
// Only the first call registers a listener.
func (p *Postgres) Subscribe(onChange func(keys []string), onState func(live bool)) {
	if !p.subscribed.CompareAndSwap(false, true) {
		p.log.Error("postgres: Subscribe called twice; the second listener is ignored")
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, listenConnectBudget)
	conn, err := p.listen(ctx)
	cancel()
	if err != nil {
		p.log.Warn("change listener not connected; caches stay off until it is", zap.Error(err))
		onState(false)
	}
	p.wg.Add(1)
	go p.listenLoop(conn, onChange, onState)
}

// listen opens the listener's connection and LISTENs.
func (p *Postgres) listen(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, p.connCfg)
	if err != nil {
		return nil, fmt.Errorf("store: postgres: listener: connect: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{p.channel}.Sanitize()); err != nil {
		_ = conn.Close(ctx)
		return nil, fmt.Errorf("store: postgres: listener: LISTEN: %w", err)
	}
	return conn, nil
}

// listenLoop delivers notifications until Close; conn is nil when the
// listener is not connected.
func (p *Postgres) listenLoop(conn *pgx.Conn, onChange func([]string), onState func(bool)) {
	defer p.wg.Done()
	defer func() {
		if conn != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = conn.Close(ctx)
			cancel()
		}
	}()
	backoff := minRetryBackoff
	for {
		if conn == nil {
			for {
				select {
				case <-p.ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, maxListenBackoff)
				ctx, cancel := context.WithTimeout(p.ctx, listenConnectBudget)
				c, err := p.listen(ctx)
				cancel()
				if err == nil {
					conn = c
					break
				}
				if p.ctx.Err() != nil {
					return
				}
				p.log.Debug("change listener: reconnect failed", zap.Error(err))
			}
			backoff = minRetryBackoff
			p.log.Info("change listener reconnected")
			onState(true)
		}
		keys, err := p.wait(conn)
		if err != nil {
			if p.ctx.Err() != nil {
				return
			}
			p.log.Warn("change listener lost its connection; caches are off until it is back", zap.Error(err))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = conn.Close(ctx)
			cancel()
			conn = nil
			onState(false)
			continue
		}
		if len(keys) > 0 {
			onChange(keys)
		}
	}
}

// wait returns the keys of the next notification from another instance
// (nil for one of ours, or when a quiet connection passed its ping).
func (p *Postgres) wait(conn *pgx.Conn) ([]string, error) {
	ctx, cancel := context.WithTimeout(p.ctx, p.listenPing)
	n, err := conn.WaitForNotification(ctx)
	cancel()
	if err != nil {
		if !errors.Is(err, context.DeadlineExceeded) || conn.IsClosed() || p.ctx.Err() != nil {
			return nil, err
		}
		// Quiet for a while: make sure the server is still there, since
		// a dead peer would otherwise never be noticed.
		ctx, cancel := context.WithTimeout(p.ctx, roundTripTimeout)
		defer cancel()
		if err := conn.Ping(ctx); err != nil {
			return nil, fmt.Errorf("store: postgres: listener: ping: %w", err)
		}
		p.pings.Add(1)
		return nil, nil
	}
	if n == nil || n.Channel != p.channel {
		return nil, nil
	}
	from, rest, _ := strings.Cut(n.Payload, "\n")
	if from == p.id || rest == "" {
		return nil, nil
	}
	return strings.Split(rest, "\n"), nil
}
