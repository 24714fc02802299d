package deploy

import (
	"bufio"
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction with its continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, COPY, ...
	args string
	line int
}

// stage is the instructions from one FROM to the next.
type stage struct {
	base, name string
	ins        []instruction
}

// parseDockerfile reads the instructions of path into stages. It knows what
// the checks below need: comments, line continuations, FROM ... AS name.
func parseDockerfile(t *testing.T, path string) (global []instruction, stages []stage) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var cur strings.Builder
	start, n := 0, 0
	flush := func() {
		text := strings.TrimSpace(cur.String())
		cur.Reset()
		if text == "" {
			return
		}
		cmd, args, _ := strings.Cut(text, " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			st := stage{base: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			stages = append(stages, st)
			return
		}
		if len(stages) == 0 {
			global = append(global, in)
			return
		}
		stages[len(stages)-1].ins = append(stages[len(stages)-1].ins, in)
	}
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue // a comment, also between continuation lines
		}
		if cur.Len() == 0 {
			start = n
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur.WriteString(strings.TrimSuffix(trimmed, `\`) + " ")
			continue
		}
		cur.WriteString(trimmed)
		flush()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	flush()
	return global, stages
}

func (s stage) find(cmd string) []instruction {
	var out []instruction
	for _, in := range s.ins {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// TestDockerfileRules checks the image's rules without a Docker engine: a
// multi-stage build whose final stage is an empty base (no shell, so no
// RUN and exec-form commands only), runs as a non-root user that exists in
// the image, and carries CA certificates; the build stage compiles with cgo
// off and stamps the version and commit.
func TestDockerfileRules(t *testing.T) {
	_, stages := parseDockerfile(t, filepath.Join("..", "Dockerfile"))
	if len(stages) < 2 {
		t.Fatalf("%d stages; want a build stage and a final stage", len(stages))
	}
	final := stages[len(stages)-1]
	if final.base != "scratch" && !strings.Contains(final.base, "distroless") {
		t.Errorf("final stage FROM %s: want scratch or a distroless base (no shell)", final.base)
	}
	for _, in := range final.find("RUN") {
		t.Errorf("line %d: RUN in the final stage needs a shell: %s", in.line, in.args)
	}
	for _, cmd := range []string{"ENTRYPOINT", "CMD", "HEALTHCHECK"} {
		for _, in := range final.find(cmd) {
			var argv []string
			if err := json.Unmarshal([]byte(in.args), &argv); err != nil || len(argv) == 0 {
				t.Errorf("line %d: %s %s is shell form; the final stage has no shell, use the JSON (exec) form", in.line, cmd, in.args)
			}
		}
	}
	for _, in := range final.find("COPY") {
		if regexp.MustCompile(`(^|/)(sh|bash|busybox|ash|dash)(\s|$)`).MatchString(in.args) {
			t.Errorf("line %d: the final stage copies a shell: %s", in.line, in.args)
		}
	}

	users := final.find("USER")
	if len(users) == 0 {
		t.Fatal("the final stage sets no USER: it would run as root")
	}
	user := strings.Fields(users[len(users)-1].args)[0]
	uid, _, _ := strings.Cut(user, ":")
	if uid == "0" || uid == "root" || !regexp.MustCompile(`^[1-9][0-9]*$`).MatchString(uid) {
		t.Errorf("USER %s: want a numeric non-zero uid (Kubernetes runAsNonRoot can only verify a numeric one)", user)
	}

	var copiesCerts, copiesPasswd bool
	for _, in := range final.find("COPY") {
		copiesCerts = copiesCerts || strings.Contains(in.args, "ca-certificates.crt")
		copiesPasswd = copiesPasswd || strings.Contains(in.args, "passwd")
	}
	if !copiesCerts {
		t.Error("the final stage copies no CA certificates (ca-certificates.crt)")
	}
	if !copiesPasswd {
		t.Error("the final stage has no /etc/passwd naming its user")
	}
	var names string
	for _, st := range stages[:len(stages)-1] {
		for _, in := range st.find("RUN") {
			names += in.args + "\n"
		}
	}
	if !strings.Contains(names, ":x:"+uid+":") {
		t.Errorf("no build step writes a passwd entry for uid %s", uid)
	}

	build := goBuildLine(t, stages)
	for _, want := range []string{"CGO_ENABLED=0", "-X main.version=${VERSION}", "-X main.commit=${COMMIT}", "./cmd/disburse"} {
		if !strings.Contains(build, want) {
			t.Errorf("the go build step lacks %q: %s", want, build)
		}
	}
}

// goBuildLine is the RUN instruction of a build stage that runs go build.
func goBuildLine(t *testing.T, stages []stage) string {
	t.Helper()
	for _, st := range stages[:len(stages)-1] {
		for _, in := range st.find("RUN") {
			if strings.Contains(in.args, "go build") {
				return in.args
			}
		}
	}
	t.Fatal("no build stage runs go build")
	return ""
}

// TestDockerfileBuildIsStaticAndStamped runs the Dockerfile's own go build
// line here (its ARGs filled in, its output in a temporary directory): the
// binary must be statically linked, as an empty base requires, and
// `disburse version` must print what -ldflags stamped.
func TestDockerfileBuildIsStaticAndStamped(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	_, stages := parseDockerfile(t, filepath.Join("..", "Dockerfile"))
	line := goBuildLine(t, stages)
	out := filepath.Join(t.TempDir(), "disburse")
	line = strings.NewReplacer("${VERSION}", "9.8.7-test", "${COMMIT}", "0123abcd", "/out/disburse", out).Replace(line)
	words := shellWords(t, line)
	var env []string
	for len(words) > 0 && regexp.MustCompile(`^[A-Z_]+=`).MatchString(words[0]) {
		env = append(env, words[0])
		words = words[1:]
	}
	if len(words) < 2 || words[0] != "go" || words[1] != "build" {
		t.Fatalf("cannot run the build line here: %q", line)
	}
	cmd := exec.Command("go", words[1:]...)
	cmd.Dir = ".." // the Dockerfile builds from the repository root
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", line, err, b)
	}

	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary is dynamically linked (program header %v); an empty base cannot run it", p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}

	b, err := exec.Command(out, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("disburse version: %v\n%s", err, b)
	}
	if got := string(b); !strings.HasPrefix(got, "disburse 9.8.7-test (commit 0123abcd,") {
		t.Errorf("disburse version printed %q; want the stamped version and commit", got)
	}
}

// shellWords splits a command line the way sh would for the quoting the
// Dockerfile uses (double quotes, no escapes inside them).
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	inWord, quoted := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case (r == ' ' || r == '\t') && !quoted:
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		t.Fatalf("unbalanced quotes in %q", s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}
