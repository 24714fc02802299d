package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

// The roles the deployment files run, and the stages `worker --stages`
// takes: the relay publishes the transactional outbox beside the ledger.
var (
	longRunningRoles = []string{"api", "worker", "banksim"}
	workerStages     = []string{"ledger", "relay", "dispatch", "callbacks", "sink"}
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binOut  []byte
)

// disburseBinary builds cmd/disburse once per test binary, so the files'
// commands and settings can be checked against the flags the roles really
// take.
func disburseBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "disburse-deploy-test-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "disburse")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/disburse")
		cmd.Dir = ".."
		binOut, binErr = cmd.CombinedOutput()
	})
	if binErr != nil {
		t.Fatalf("go build ./cmd/disburse: %v\n%s", binErr, binOut)
	}
	return binPath
}

var flagLine = regexp.MustCompile(`(?m)^\s+-([a-z0-9-]+)`)

// roleFlags is the set of flags `disburse <role> -h` lists.
func roleFlags(t *testing.T, role string) map[string]bool {
	t.Helper()
	out, _ := exec.Command(disburseBinary(t), role, "-h").CombinedOutput() // -h exits 2 after printing
	flags := map[string]bool{}
	for _, m := range flagLine.FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if len(flags) == 0 {
		t.Fatalf("disburse %s -h listed no flags:\n%s", role, out)
	}
	return flags
}

// checkRoleArgs checks one container's command and DISBURSE_* environment
// against the role's flags: every flag exists, `--stages` names known
// stages. It returns the role and the stages.
func checkRoleArgs(t *testing.T, where string, args []string, env map[string]string) (role string, stages []string) {
	t.Helper()
	if len(args) == 0 {
		t.Errorf("%s: no command (the image's entrypoint needs a role)", where)
		return "", nil
	}
	role = args[0]
	flags := roleFlags(t, role)
	for i := 1; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !flags[name] {
			t.Errorf("%s: disburse %s has no flag --%s", where, role, name)
		}
		if name == "stages" && i+1 < len(args) {
			for _, s := range strings.Split(args[i+1], ",") {
				if !slices.Contains(workerStages, s) {
					t.Errorf("%s: unknown stage %q", where, s)
				}
				stages = append(stages, s)
			}
		}
	}
	for k := range env {
		if !strings.HasPrefix(k, "DISBURSE_") {
			continue
		}
		name := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(k, "DISBURSE_")), "_", "-")
		if !flags[name] && role != "banksim" {
			t.Errorf("%s: %s sets --%s, which disburse %s does not take", where, k, name, role)
		}
	}
	return role, stages
}
