package schemas

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx" for goose
	"github.com/pressly/goose/v3"
)

// MigratePostgres applies every Postgres migration not yet applied to the
// database at url and reports what it did through logf.
func MigratePostgres(ctx context.Context, url string, logf func(format string, args ...any)) error {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return fmt.Errorf("open postgres: %w", err)
	}
	defer db.Close()
	sub, err := fs.Sub(Postgres, "postgres")
	if err != nil {
		return err
	}
	// Out of order: migrations written on parallel branches may land after a
	// higher number was applied to a development database.
	provider, err := goose.NewProvider(goose.DialectPostgres, db, sub, goose.WithAllowOutofOrder(true))
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	results, err := provider.Up(ctx)
	if err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	for _, r := range results {
		logf("applied migration %s in %s", r.Source.Path, r.Duration)
	}
	return nil
}
