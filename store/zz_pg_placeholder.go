package store

import (
	"context"
	"errors"

	"go.uber.org/zap"
)

// Placeholder until the PostgreSQL backend lands (removed by that merge).
type PostgresOptions struct {
	DSN, Schema string
	MaxConns    int32
	Logger      *zap.Logger
}

func OpenPostgres(context.Context, PostgresOptions) (Backend, error) {
	return nil, errors.New("store: postgres: not built yet")
}
