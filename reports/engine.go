package reports

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/disburse/disburse/reports/chdb"
)

// Engine runs ClickHouse SQL. Queries are complete SQL text: values are
// quoted with Quote, never interpolated raw.
type Engine interface {
	// Exec runs a statement without output (DDL, INSERT ... SELECT).
	Exec(ctx context.Context, query string) error
	// QueryJSON runs a SELECT and calls fn with each row as one JSON
	// object. Select only strings and integers (format times in SQL), so
	// both engines encode rows alike.
	QueryJSON(ctx context.Context, query string, fn func(row []byte) error) error
	// Insert appends rows (values in columns' order, as Row.Values gives
	// them) to table in one block.
	Insert(ctx context.Context, table string, columns []string, rows [][]any) error
	Close() error
}

// Quote renders s as a ClickHouse string literal.
func Quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// embedded is the engine inside the process (chDB).
type embedded struct{ conn *chdb.Conn }

// OpenEmbedded starts the embedded engine on dataDir with the library in
// libDir (chdb.DefaultDir() when empty). One per process.
func OpenEmbedded(libDir, dataDir string) (Engine, error) {
	conn, err := chdb.Open(libDir, dataDir, "output_format_json_quote_64bit_integers=0")
	if err != nil {
		return nil, err
	}
	return &embedded{conn: conn}, nil
}

func (e *embedded) Exec(_ context.Context, query string) error {
	_, err := e.conn.Query(query, "TabSeparated")
	return err
}

func (e *embedded) QueryJSON(_ context.Context, query string, fn func([]byte) error) error {
	out, err := e.conn.Query(query, "JSONEachRow")
	if err != nil {
		return err
	}
	for len(out) > 0 {
		var line []byte
		line, out, _ = bytes.Cut(out, []byte{'\n'})
		if len(line) == 0 {
			continue
		}
		if err := fn(line); err != nil {
			return err
		}
	}
	return nil
}

// Insert sends the rows as JSONEachRow inside the INSERT statement.
func (e *embedded) Insert(_ context.Context, table string, columns []string, rows [][]any) error {
	var b strings.Builder
	fmt.Fprintf(&b, "INSERT INTO %s (%s) FORMAT JSONEachRow\n", table, strings.Join(columns, ", "))
	obj := make(map[string]any, len(columns))
	for _, row := range rows {
		for i, c := range columns {
			v := row[i]
			if t, ok := v.(time.Time); ok {
				v = t.UTC().Format("2006-01-02 15:04:05.000")
			}
			obj[c] = v
		}
		line, err := json.Marshal(obj)
		if err != nil {
			return err
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	_, err := e.conn.Query(b.String(), "TabSeparated")
	return err
}

func (e *embedded) Close() error { return e.conn.Close() }
