package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/disburse/disburse/reports"
	"github.com/disburse/disburse/reports/chdb"
)

// reportsConfig chooses the ClickHouse the reports live in: a server
// (--clickhouse-addr, production) or the engine embedded in the process on
// a local directory (--chdb-path, the default of `disburse dev`).
type reportsConfig struct {
	addr, user, password, database string
	chdbPath, chdbLib              string
}

func (c *reportsConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.addr, "clickhouse-addr", "", "ClickHouse server for reports, host:port of the native protocol")
	fs.StringVar(&c.user, "clickhouse-user", "default", "ClickHouse user")
	fs.StringVar(&c.password, "clickhouse-password", "", "ClickHouse password")
	fs.StringVar(&c.database, "clickhouse-database", reports.DefaultDatabase, "ClickHouse database of the reports")
	fs.StringVar(&c.chdbPath, "chdb-path", "", "run the ClickHouse engine in the process (chDB) on this data directory instead of a server")
	fs.StringVar(&c.chdbLib, "chdb-lib", "", "directory deploy/chdb.sh installed the engine library in (default: "+chdb.EnvDir+" or its cache)")
}

func (c *reportsConfig) configured() bool { return c.addr != "" || c.chdbPath != "" }

// open connects to the configured ClickHouse; (nil, nil) when none is.
func (c *reportsConfig) open(ctx context.Context) (*reports.Store, error) {
	var eng reports.Engine
	var err error
	switch {
	case c.addr != "" && c.chdbPath != "":
		return nil, errors.New("--clickhouse-addr and --chdb-path exclude each other")
	case c.addr != "":
		eng, err = reports.OpenServer(ctx, c.addr, c.user, c.password)
	case c.chdbPath != "":
		var dir string
		if dir, err = filepath.Abs(c.chdbPath); err == nil {
			eng, err = reports.OpenEmbedded(c.chdbLib, dir)
		}
	default:
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reports: %w", err)
	}
	st, err := reports.NewStore(eng, c.database)
	if err != nil {
		eng.Close()
		return nil, fmt.Errorf("--clickhouse-database: %w", err)
	}
	return st, nil
}

// openMigrated opens the store and applies the ClickHouse migrations.
func (c *reportsConfig) openMigrated(ctx context.Context) (*reports.Store, error) {
	st, err := c.open(ctx)
	if err != nil || st == nil {
		return st, err
	}
	if err := st.Migrate(ctx, func(f string, a ...any) { slog.Info(fmt.Sprintf(f, a...)) }); err != nil {
		st.Engine().Close()
		return nil, err
	}
	return st, nil
}
