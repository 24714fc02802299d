package testenv

import (
	"context"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres returns the URL of a new, empty database that belongs to this
// test alone. The database is created on the server named by
// DISBURSE_TEST_POSTGRES_URL (or a Docker container, see the package doc)
// and dropped WITH (FORCE) when the test ends, closing any connection the
// test left open.
func Postgres(tb testing.TB) string {
	tb.Helper()
	server := postgresServer(tb)

	name := "t_" + randomHex(8)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		tb.Fatalf("testenv: connect to PostgreSQL at %s: %v (is it running? `make services-up`)", redact(server), err)
	}
	defer conn.Close(ctx)
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		tb.Fatalf("testenv: create database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, server)
		if err != nil {
			tb.Errorf("testenv: drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
			tb.Errorf("testenv: drop database %s: %v", name, err)
		}
	})

	u, err := url.Parse(server)
	if err != nil {
		tb.Fatalf("testenv: %s: %v", EnvPostgresURL, err)
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

// postgresServer returns the URL of the server to create databases on.
func postgresServer(tb testing.TB) string {
	tb.Helper()
	if s := os.Getenv(EnvPostgresURL); s != "" {
		if _, err := url.Parse(s); err != nil {
			tb.Fatalf("testenv: %s is not a URL: %v", EnvPostgresURL, err)
		}
		return s
	}
	if !dockerReachable() {
		missing(tb, "postgres", EnvPostgresURL)
	}
	s, err := dockerPostgres()
	if err != nil {
		tb.Fatalf("testenv: postgres: %v; or run `make services-up` and set %s", err, EnvPostgresURL)
	}
	return s
}

// redact hides a password in a URL for messages.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
