package main

import (
	"context"
	"errors"
	"flag"
	"os"
	"sort"
	"testing"
)

// TestHelpExitsZero: `disburse <command> -h` prints the command's flags and
// exits 0, for every command, without starting anything.
func TestHelpExitsZero(t *testing.T) {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	stderr := os.Stderr
	os.Stderr = devNull // the flag package prints the usage there
	defer func() { os.Stderr = stderr }()
	for _, n := range names {
		for _, h := range []string{"-h", "--help"} {
			err := commands[n].run(context.Background(), []string{h})
			// nil is a command that handles -h itself (reconcile).
			if (err != nil && !errors.Is(err, flag.ErrHelp)) || exitCode(err) != 0 {
				t.Errorf("disburse %s %s: %v (exit %d), want the usage and exit 0", n, h, err, exitCode(err))
			}
		}
	}
	if exitCode(errors.New("boom")) != 1 || exitCode(&exitError{code: 3, err: errors.New("x")}) != 3 {
		t.Error("exitCode of other errors changed")
	}
}
