//go:build nochdb

package chdb

import (
	"errors"
	"os"
	"path/filepath"
)

// This file replaces the engine binding in binaries built with -tags nochdb,
// as the container image is: purego makes a binary dynamically linked even
// with cgo off, and the embedded engine needs libpython besides, so a static
// image leaves it out and its processes write to a ClickHouse server
// (--clickhouse-addr). Open fails with ErrNotInstalled, which the roles
// already treat as "no embedded engine here".

// EnvDir names the directory deploy/chdb.sh installs into.
const EnvDir = "DISBURSE_CHDB_DIR"

// Version is the chdb wheel deploy/chdb.sh installs.
const Version = "3.7.2"

// DefaultDir is where deploy/chdb.sh installs when EnvDir is not set.
func DefaultDir() string {
	if d := os.Getenv(EnvDir); d != "" {
		return d
	}
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "disburse", "chdb", Version)
}

// ErrNotInstalled is what Open returns in this build.
var ErrNotInstalled = errors.New("chdb: this binary was built without the embedded ClickHouse engine (-tags nochdb); use a ClickHouse server (--clickhouse-addr)")

// Conn is never opened in this build.
type Conn struct{}

// Open always fails with ErrNotInstalled in this build.
func Open(libDir, dataDir string, settings ...string) (*Conn, error) {
	return nil, ErrNotInstalled
}

// Query is unreachable: Open never returns a Conn.
func (c *Conn) Query(query, format string) ([]byte, error) { return nil, ErrNotInstalled }

// Close is unreachable: Open never returns a Conn.
func (c *Conn) Close() error { return nil }
