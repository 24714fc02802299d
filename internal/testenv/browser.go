package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Environment variables of the browser tests; deploy/browser.sh installs
// both and prints them (deploy/browser.sh env).
const (
	EnvChromium = "DISBURSE_CHROMIUM"
	EnvAxeJS    = "DISBURSE_AXE_JS"
)

// AxeVersion is the axe-core deploy/browser.sh fetches (keep in step).
const AxeVersion = "4.14.1"

// Chromium returns the path of Debian's Chromium for the browser tests,
// or stops the test (a failure under DISBURSE_REQUIRE_SERVICES=1).
func Chromium(tb testing.TB) string {
	tb.Helper()
	path := envOr(EnvChromium, "/usr/bin/chromium")
	if _, err := exec.LookPath(path); err != nil {
		browserMissing(tb, fmt.Sprintf("Chromium (%s)", path), EnvChromium)
	}
	return path
}

// AxeJS returns the source of axe-core's axe.min.js, to inject into the
// pages under test, or stops the test as Chromium does.
func AxeJS(tb testing.TB) []byte {
	tb.Helper()
	path := os.Getenv(EnvAxeJS)
	if path == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = filepath.Join(os.Getenv("HOME"), ".cache")
		}
		path = filepath.Join(cache, "disburse", "axe-core", AxeVersion, "node_modules", "axe-core", "axe.min.js")
	}
	src, err := os.ReadFile(path)
	if err != nil {
		browserMissing(tb, "axe-core ("+path+")", EnvAxeJS)
	}
	return src
}

func browserMissing(tb testing.TB, what, envVar string) {
	tb.Helper()
	msg := fmt.Sprintf("%s not available: run deploy/browser.sh (make test does), or set %s", what, envVar)
	if os.Getenv(EnvRequireServices) == "1" {
		tb.Fatal(msg + " (" + EnvRequireServices + "=1: a missing service fails the test)")
	}
	tb.Skip(msg)
}
