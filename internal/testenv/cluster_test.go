package testenv

import (
	"context"
	"testing"
	"time"
)

// TestPrivatePostgresRestarts checks what a restart test relies on: a
// committed row survives an immediate stop (crash recovery) and a fast
// one, the URL stays good across restarts, and a connection open at the
// stop is broken rather than silently kept.
func TestPrivatePostgresRestarts(t *testing.T) {
	c := PrivatePostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn := connect(t, c.URL())
	for _, q := range []string{"SHOW fsync", "SHOW synchronous_commit"} {
		var v string
		if err := conn.QueryRow(ctx, q).Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v != "on" {
			t.Errorf("%s: %s, want on", q, v)
		}
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (n int); INSERT INTO kept VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	for i, mode := range []StopMode{StopImmediate, StopFast} {
		if err := c.Stop(mode); err != nil {
			t.Fatal(err)
		}
		if err := c.Stop(mode); err != nil {
			t.Fatalf("stopping a stopped cluster: %v", err)
		}
		if err := conn.Ping(ctx); err == nil {
			t.Fatalf("a connection opened before the %s stop still answers", mode)
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		conn = connect(t, c.URL())
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM kept").Scan(&n); err != nil {
			t.Fatalf("after the %s stop: %v", mode, err)
		}
		if n != i+1 {
			t.Fatalf("after the %s stop the table holds %d rows, want %d", mode, n, i+1)
		}
		if _, err := conn.Exec(ctx, "INSERT INTO kept VALUES (1)"); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Stop("abort"); err == nil {
		t.Error("Stop accepted an unknown mode")
	}
}

// TestVersionLess orders Debian's /usr/lib/postgresql/<version>/bin.
func TestVersionLess(t *testing.T) {
	for _, c := range []struct {
		a, b string
		less bool
	}{
		{"/usr/lib/postgresql/9.6/bin", "/usr/lib/postgresql/15/bin", true},
		{"/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/9.6/bin", false},
		{"/usr/lib/postgresql/14/bin", "/usr/lib/postgresql/15/bin", true},
		{"/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/15/bin", false},
	} {
		if got := versionLess(c.a, c.b); got != c.less {
			t.Errorf("versionLess(%s, %s) = %v", c.a, c.b, got)
		}
	}
}
