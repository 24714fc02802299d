package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvPostgresBin names the directory holding initdb and pg_ctl, as for
// deploy/postgres.sh.
const EnvPostgresBin = "DISBURSE_PG_BIN"

// StopMode is how pg_ctl stops a cluster.
type StopMode string

const (
	// StopImmediate aborts every server process without a checkpoint, as
	// a crash or a power cut would: the next start replays the WAL.
	StopImmediate StopMode = "immediate"
	// StopFast disconnects the clients, rolls back their open
	// transactions and shuts down cleanly.
	StopFast StopMode = "fast"
)

// Cluster is a PostgreSQL server private to one test, which the test may
// stop and start again. Tests that take Postgres away from running
// processes need one: the shared server of DISBURSE_TEST_POSTGRES_URL
// serves every test binary at once and must never go down.
type Cluster struct {
	bin, dir, data, log string
	port                int
	asPostgres          bool // run the tools as the "postgres" OS user (we are root)
}

// PrivatePostgres initialises a new cluster from the distribution's
// PostgreSQL binaries (found as deploy/postgres.sh finds them), starts it
// on a free loopback port with trust authentication and PostgreSQL's
// durable defaults (fsync, synchronous_commit on), and creates the
// database "disburse" in it. The cluster is stopped and its files removed
// when the test ends. Without the binaries the test is skipped, or fails
// under DISBURSE_REQUIRE_SERVICES=1. A test binary killed before its
// cleanup leaves its server running: stop it with
// `pg_ctl stop -D /tmp/disburse-pg-*/data` (as the postgres user).
func PrivatePostgres(tb testing.TB) *Cluster {
	tb.Helper()
	bin := postgresBin()
	if bin == "" || !executable(filepath.Join(bin, "initdb")) || !executable(filepath.Join(bin, "pg_ctl")) {
		missingBinaries(tb, fmt.Sprintf("PostgreSQL server binaries (initdb, pg_ctl) not found (looked in %q)", bin))
	}
	c := &Cluster{bin: bin, asPostgres: os.Geteuid() == 0}
	if c.asPostgres {
		// PostgreSQL refuses to run as root; deploy/postgres.sh runs its
		// tools as "postgres" through runuser, and so does this.
		if _, err := exec.LookPath("runuser"); err != nil {
			missingBinaries(tb, "running as root without runuser to start PostgreSQL as the postgres user")
		}
		if out, err := exec.Command("id", "postgres").CombinedOutput(); err != nil {
			missingBinaries(tb, fmt.Sprintf("running as root without a postgres OS user (%s)", strings.TrimSpace(string(out))))
		}
	}
	// Not t.TempDir: its parents are mode 0700 and owned by root, so the
	// postgres user could not reach the data directory.
	dir, err := os.MkdirTemp("", "disburse-pg-")
	if err != nil {
		tb.Fatalf("testenv: private postgres: %v", err)
	}
	c.dir, c.data, c.log = dir, filepath.Join(dir, "data"), filepath.Join(dir, "postgres.log")
	tb.Cleanup(func() {
		// Fast, not immediate: the cluster's files are removed next, and a
		// server still writing them would only make noise.
		if err := c.Stop(StopFast); err != nil {
			tb.Errorf("testenv: stop private postgres: %v", err)
		}
		if err := os.RemoveAll(dir); err != nil {
			tb.Errorf("testenv: remove private postgres files: %v", err)
		}
	})
	if c.asPostgres {
		if out, err := exec.Command("chown", "postgres:", dir).CombinedOutput(); err != nil {
			tb.Fatalf("testenv: chown %s to postgres: %v: %s", dir, err, out)
		}
	}
	out, err := c.tool("initdb", "-D", c.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale").CombinedOutput()
	if err != nil {
		tb.Fatalf("testenv: initdb %s: %v\n%s", c.data, err, tail(string(out), 2000))
	}
	if err := c.configure(); err != nil {
		tb.Fatalf("testenv: private postgres: %v", err)
	}
	if err := c.Start(); err != nil {
		tb.Fatalf("testenv: private postgres: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.url("postgres"))
	if err != nil {
		tb.Fatalf("testenv: connect to the private postgres: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE disburse"); err != nil {
		tb.Fatalf("testenv: private postgres: create database: %v", err)
	}
	return c
}

// URL is the address of the cluster's database "disburse".
func (c *Cluster) URL() string { return c.url("disburse") }

func (c *Cluster) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

// Start starts the server and waits until it accepts connections. After a
// StopImmediate this includes crash recovery. The port stays the one the
// cluster was first given, so URLs handed out before stay good.
func (c *Cluster) Start() error {
	var last error
	// The port lies in Linux's ephemeral range, so an outgoing connection
	// can hold it for a moment while the server is down: retry that case
	// only, as deploy/postgres.sh does.
	for attempt := 0; attempt < 5; attempt++ {
		before := c.logSize()
		out, err := c.tool("pg_ctl", "start", "-D", c.data, "-l", c.log, "-w", "-t", "60", "-s").CombinedOutput()
		if err == nil {
			return nil
		}
		logged := c.logSince(before)
		last = fmt.Errorf("pg_ctl start: %v: %s%s", err, strings.TrimSpace(string(out)), tail(logged, 2000))
		if !strings.Contains(logged, "Address already in use") {
			break
		}
		time.Sleep(time.Second)
	}
	return last
}

// Stop stops the server in the given mode and waits until it is gone.
// Stopping a stopped cluster does nothing.
func (c *Cluster) Stop(mode StopMode) error {
	if mode != StopImmediate && mode != StopFast {
		return fmt.Errorf("testenv: stop mode %q: want %q or %q", mode, StopImmediate, StopFast)
	}
	if !c.running() {
		return nil
	}
	out, err := c.tool("pg_ctl", "stop", "-D", c.data, "-m", string(mode), "-w", "-t", "60", "-s").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl stop -m %s: %v: %s", mode, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// running reports whether the server is up (pg_ctl status exits 3 when it
// is not).
func (c *Cluster) running() bool {
	return c.tool("pg_ctl", "status", "-D", c.data).Run() == nil
}

// configure writes what deploy/postgres.sh writes, for this cluster's
// port and directory, and a free port for it; all but the script's sizing
// for bulk write rates (1 GB of buffers, 8 GB of WAL between checkpoints),
// which a cluster serving one test does not need and which would reserve
// a gigabyte more for each test running one.
func (c *Cluster) configure() error {
	port, err := freePort()
	if err != nil {
		return err
	}
	c.port = port
	conf := fmt.Sprintf(`# Written by internal/testenv for one test.
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
max_connections = 200
logging_collector = off
log_min_messages = warning
# PostgreSQL's defaults, stated: a restart test is only worth something
# against a server that keeps what it acknowledged.
fsync = on
synchronous_commit = on
full_page_writes = on
`, port, c.dir)
	hba := "# Written by internal/testenv: trust on the unix socket and loopback only.\n" +
		"local all all              trust\n" +
		"host  all all 127.0.0.1/32 trust\n"
	if err := c.write("disburse.conf", conf); err != nil {
		return err
	}
	if err := c.write("pg_hba.conf", hba); err != nil {
		return err
	}
	// Appending keeps postgresql.conf's owner (postgres) and mode.
	f, err := os.OpenFile(filepath.Join(c.data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString("include_if_exists = 'disburse.conf'\n"); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// write replaces a file of the data directory, owned by whoever runs the
// server.
func (c *Cluster) write(name, content string) error {
	path := filepath.Join(c.data, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return err
	}
	if c.asPostgres {
		if out, err := exec.Command("chown", "postgres:", path).CombinedOutput(); err != nil {
			return fmt.Errorf("chown %s: %v: %s", path, err, out)
		}
	}
	return nil
}

// tool runs one of the PostgreSQL programs, as the postgres user when we
// are root.
func (c *Cluster) tool(name string, args ...string) *exec.Cmd {
	path := filepath.Join(c.bin, name)
	if c.asPostgres {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

func (c *Cluster) logSize() int64 {
	fi, err := os.Stat(c.log)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func (c *Cluster) logSince(offset int64) string {
	b, err := os.ReadFile(c.log)
	if err != nil || int64(len(b)) < offset {
		return ""
	}
	if s := string(b[offset:]); s != "" {
		return "\n" + s
	}
	return ""
}

// postgresBin finds the directory holding initdb and pg_ctl:
// DISBURSE_PG_BIN, else the newest /usr/lib/postgresql/*/bin (Debian),
// else the PATH; "" when there is none.
func postgresBin() string {
	if d := os.Getenv(EnvPostgresBin); d != "" {
		return d
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionLess(dirs[j], dirs[i]) })
	for _, d := range dirs {
		if executable(filepath.Join(d, "initdb")) && executable(filepath.Join(d, "pg_ctl")) {
			return d
		}
	}
	if _, err := exec.LookPath("initdb"); err == nil {
		if p, err := exec.LookPath("pg_ctl"); err == nil {
			return filepath.Dir(p)
		}
	}
	return ""
}

// versionLess orders /usr/lib/postgresql/<version>/bin by version, so 15
// comes after 9.6.
func versionLess(a, b string) bool {
	va := strings.Split(filepath.Base(filepath.Dir(a)), ".")
	vb := strings.Split(filepath.Base(filepath.Dir(b)), ".")
	for i := 0; i < len(va) && i < len(vb); i++ {
		x, errX := strconv.Atoi(va[i])
		y, errY := strconv.Atoi(vb[i])
		if errX != nil || errY != nil {
			if va[i] != vb[i] {
				return va[i] < vb[i]
			}
			continue
		}
		if x != y {
			return x < y
		}
	}
	return len(va) < len(vb)
}

func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// missingBinaries stops a test that needs a private cluster the machine
// cannot run: a skip, or a failure under DISBURSE_REQUIRE_SERVICES=1.
func missingBinaries(tb testing.TB, why string) {
	tb.Helper()
	msg := why + ": install the PostgreSQL server package (`deploy/postgres.sh up` does it on Debian as root, or `apt-get install postgresql`), or set " + EnvPostgresBin
	if os.Getenv(EnvRequireServices) == "1" {
		tb.Fatal("testenv: " + msg + " (" + EnvRequireServices + "=1: a missing service fails the test)")
	}
	tb.Skip("testenv: " + msg)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
