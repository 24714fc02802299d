package client_test

import (
	"os/exec"
	"testing"
)

// TestExamplesCompile builds the programs under examples/, which use this
// package as a merchant would.
func TestExamplesCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds programs")
	}
	out, err := exec.Command("go", "vet", "../examples/...").CombinedOutput()
	if err != nil {
		t.Fatalf("examples do not build: %v\n%s", err, out)
	}
}
