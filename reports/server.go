package reports

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// server is a ClickHouse server reached with clickhouse-go (native protocol).
type server struct{ conn driver.Conn }

// OpenServer connects to the ClickHouse server at addr (host:port of the
// native protocol, 9000 by default) and checks that it answers.
func OpenServer(ctx context.Context, addr, user, password string) (Engine, error) {
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{addr},
		Auth:        clickhouse.Auth{Username: user, Password: password},
		DialTimeout: 10 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("clickhouse %s: %w", addr, err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := conn.Ping(pingCtx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("clickhouse at %s does not answer: %w", addr, err)
	}
	return &server{conn: conn}, nil
}

func (s *server) Exec(ctx context.Context, query string) error { return s.conn.Exec(ctx, query) }

func (s *server) QueryJSON(ctx context.Context, query string, fn func([]byte) error) error {
	rows, err := s.conn.Query(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols := rows.Columns()
	types := rows.ColumnTypes()
	for rows.Next() {
		ptrs := make([]any, len(cols))
		for i, t := range types {
			ptrs[i] = reflect.New(t.ScanType()).Interface()
		}
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		obj := make(map[string]any, len(cols))
		for i, c := range cols {
			obj[c] = reflect.ValueOf(ptrs[i]).Elem().Interface()
		}
		line, err := json.Marshal(obj)
		if err != nil {
			return err
		}
		if err := fn(line); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Insert sends the rows as one native batch.
func (s *server) Insert(ctx context.Context, table string, columns []string, rows [][]any) error {
	batch, err := s.conn.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO %s (%s)", table, strings.Join(columns, ", ")))
	if err != nil {
		return err
	}
	for _, row := range rows {
		if err := batch.Append(row...); err != nil {
			_ = batch.Abort()
			return err
		}
	}
	return batch.Send()
}

func (s *server) Close() error { return s.conn.Close() }
