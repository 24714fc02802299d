//go:build !nochdb

package chdb

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// TestEngine runs real queries on the engine and checks that Go still owns
// its signals afterwards (a nil dereference is a panic, not a crash).
func TestEngine(t *testing.T) {
	c, err := Open("", t.TempDir(), "output_format_json_quote_64bit_integers=0")
	if errors.Is(err, ErrNotInstalled) {
		if os.Getenv("DISBURSE_REQUIRE_SERVICES") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out, err := c.Query("SELECT toUInt64(42) AS n, 'a''b' AS s", "JSONEachRow")
	if err != nil || string(out) != "{\"n\":42,\"s\":\"a'b\"}\n" {
		t.Fatalf("got %q, %v", out, err)
	}
	if out, err := c.Query("CREATE TABLE t (a UInt64) ENGINE = MergeTree ORDER BY a", ""); err != nil || out != nil {
		t.Fatalf("create: %q, %v", out, err)
	}
	if _, err := c.Query("SELECT * FROM nosuch", "JSONEachRow"); err == nil || !strings.Contains(err.Error(), "UNKNOWN_TABLE") {
		t.Fatalf("error query: %v", err)
	}
	// The engine re-installs SIGTSTP and SIGRTMIN handlers from its own
	// threads at times; the signals Go relies on must be Go's.
	now := saveSignals()
	for _, sig := range []int32{2, 4, 6, 7, 8, 11, 13, 15, 23} { // INT ILL ABRT BUS FPE SEGV PIPE TERM URG
		if !sameHandler(&now[sig], &goSignals[sig]) {
			t.Errorf("signal %d is handled by the engine", sig)
		}
	}
	panicked := func() (v any) {
		defer func() { v = recover() }()
		var p *int
		return *p
	}()
	if panicked == nil {
		t.Fatal("nil dereference did not panic")
	}
}
