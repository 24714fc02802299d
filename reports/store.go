package reports

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/disburse/disburse/schemas"
)

// DefaultDatabase is the ClickHouse database the reports live in.
const DefaultDatabase = "disburse"

// Store reads and writes the reports of one database on an engine.
type Store struct {
	eng Engine
	db  string
}

var dbName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// NewStore uses database db (DefaultDatabase when empty) on eng.
func NewStore(eng Engine, db string) (*Store, error) {
	if db == "" {
		db = DefaultDatabase
	}
	if !dbName.MatchString(db) {
		return nil, fmt.Errorf("reports: database name %q: letters, digits and _ only", db)
	}
	return &Store{eng: eng, db: db}, nil
}

// Engine is the engine the store runs on.
func (s *Store) Engine() Engine { return s.eng }

// Database is the store's database.
func (s *Store) Database() string { return s.db }

// table qualifies a table name with the store's database.
func (s *Store) table(name string) string { return s.db + "." + name }

// Migrate creates the database and applies every migration of
// schemas/clickhouse not yet recorded in its schema_migrations table, in
// file order, and reports each through logf.
func (s *Store) Migrate(ctx context.Context, logf func(format string, args ...any)) error {
	if err := s.eng.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+s.db); err != nil {
		return fmt.Errorf("clickhouse: create database %s: %w", s.db, err)
	}
	if err := s.eng.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+s.table("schema_migrations")+
		" (version UInt32, name String, applied_at DateTime('UTC') DEFAULT now()) ENGINE = MergeTree ORDER BY version"); err != nil {
		return fmt.Errorf("clickhouse: migrations table: %w", err)
	}
	applied := map[int]bool{}
	err := s.eng.QueryJSON(ctx, "SELECT version FROM "+s.table("schema_migrations"), func(row []byte) error {
		var r struct{ Version int }
		if err := json.Unmarshal(row, &r); err != nil {
			return err
		}
		applied[r.Version] = true
		return nil
	})
	if err != nil {
		return fmt.Errorf("clickhouse: read migrations: %w", err)
	}
	files, err := fs.Glob(schemas.ClickHouse, "clickhouse/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(files)
	for _, f := range files {
		name := path.Base(f)
		num, _, _ := strings.Cut(name, "_")
		version, err := strconv.Atoi(num)
		if err != nil {
			return fmt.Errorf("clickhouse migration %s: name must start with its number", name)
		}
		if applied[version] {
			continue
		}
		text, err := fs.ReadFile(schemas.ClickHouse, f)
		if err != nil {
			return err
		}
		for _, stmt := range Statements(strings.ReplaceAll(string(text), "{db}", s.db)) {
			if err := s.eng.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("clickhouse migration %s: %w", name, err)
			}
		}
		if err := s.eng.Exec(ctx, fmt.Sprintf("INSERT INTO %s (version, name) VALUES (%d, %s)",
			s.table("schema_migrations"), version, Quote(name))); err != nil {
			return fmt.Errorf("clickhouse migration %s: record: %w", name, err)
		}
		logf("applied clickhouse migration %s", name)
	}
	return nil
}

// Statements splits SQL text into statements at semicolons that end a
// line, dropping comment lines and empty statements.
func Statements(text string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(text, "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(t, ";") {
			if st := strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"); st != "" {
				out = append(out, st)
			}
			cur.Reset()
		}
	}
	if st := strings.TrimSpace(cur.String()); st != "" {
		out = append(out, st)
	}
	return out
}
