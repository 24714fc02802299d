package main

import (
	"log/slog"
	"os"
	"testing"

	"github.com/disburse/disburse/internal/fixture"
)

func TestMain(m *testing.M) {
	// Only warnings and errors from the stages while tests run.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	code := m.Run()
	fixture.CloseReports()
	os.Exit(code)
}
