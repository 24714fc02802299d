//go:build !nochdb

// Package chdb runs the ClickHouse engine inside the process: it loads
// libchdb (the engine compiled into a shared library, as the chdb Python
// wheel ships it) at run time with purego, so the binary needs no cgo and
// starts, without reports, where the library is absent.
//
// The wheel's library is a Python extension: its query path takes the
// Python GIL. Open therefore loads the system's libpython first, starts an
// interpreter without signal handlers, lets the extension initialise, and
// releases the GIL, before it calls the libchdb C API (chdb_connect,
// chdb_query, ...), the same API github.com/chdb-io/chdb-go binds.
// deploy/chdb.sh installs the library; docs/decisions.md says why the
// binding is here rather than chdb-go.
package chdb

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// EnvDir names the directory deploy/chdb.sh installs into. It holds
// chdb/_chdb.abi3.so (with its companion libraries, as the wheel lays them
// out) and libpython.so, a link to the system's libpython of a version the
// wheel supports.
const EnvDir = "DISBURSE_CHDB_DIR"

// Version is the chdb wheel deploy/chdb.sh installs; the default directory
// is named after it.
const Version = "3.7.2"

// DefaultDir is where deploy/chdb.sh installs when EnvDir is not set:
// ${XDG_CACHE_HOME:-$HOME/.cache}/disburse/chdb/<Version>.
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

// ErrNotInstalled is returned by Open when the library is missing.
var ErrNotInstalled = errors.New("chdb: engine library not installed (run deploy/chdb.sh, or set " + EnvDir + ")")

// The libchdb C API (chdb.h), bound once per process.
var (
	loadOnce sync.Once
	loadErr  error
	// goSignals are the process's handlers before the engine loaded.
	goSignals *signalState

	chdbConnect       func(argc int32, argv **byte) *unsafe.Pointer // chdb_connection*
	chdbCloseConn     func(conn *unsafe.Pointer)
	chdbQuery         func(conn unsafe.Pointer, query, format string) unsafe.Pointer
	chdbResultBuffer  func(res unsafe.Pointer) *byte
	chdbResultLength  func(res unsafe.Pointer) uintptr
	chdbResultError   func(res unsafe.Pointer) *byte
	chdbDestroyResult func(res unsafe.Pointer)
)

// load binds the library in dir, once per process; a second call with
// another dir gets the first call's outcome.
func load(dir string) error {
	loadOnce.Do(func() { loadErr = loadLib(dir) })
	return loadErr
}

func loadLib(dir string) error {
	engine := filepath.Join(dir, "chdb", "_chdb.abi3.so")
	python := filepath.Join(dir, "libpython.so")
	for _, p := range []string{engine, python} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%w: %s missing", ErrNotInstalled, p)
		}
	}
	if err := bindSigaction(); err != nil {
		return err
	}
	goSignals = saveSignals()
	defer goSignals.restore()
	// Interpreter set-up must stay on one OS thread: the GIL released at
	// the end belongs to the thread that initialised Python.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	// RTLD_GLOBAL first for libpython: the extension and the
	// version-specific helper library it loads resolve Python's symbols
	// from the global scope.
	py, err := purego.Dlopen(python, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return fmt.Errorf("chdb: load %s: %w", python, err)
	}
	lib, err := purego.Dlopen(engine, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return fmt.Errorf("chdb: load %s: %w", engine, err)
	}
	var (
		pyIsInitialized  func() int32
		pyInitializeEx   func(initsigs int32)
		pyEvalSaveThread func() uintptr
		pyErrOccurred    func() uintptr
		pyErrPrint       func()
		pyInitChdb       func() uintptr
	)
	for _, b := range []struct {
		fn     any
		handle uintptr
		name   string
	}{
		{&pyIsInitialized, py, "Py_IsInitialized"},
		{&pyInitializeEx, py, "Py_InitializeEx"},
		{&pyEvalSaveThread, py, "PyEval_SaveThread"},
		{&pyErrOccurred, py, "PyErr_Occurred"},
		{&pyErrPrint, py, "PyErr_Print"},
		{&pyInitChdb, lib, "PyInit__chdb"},
		{&chdbConnect, lib, "chdb_connect"},
		{&chdbCloseConn, lib, "chdb_close_conn"},
		{&chdbQuery, lib, "chdb_query"},
		{&chdbResultBuffer, lib, "chdb_result_buffer"},
		{&chdbResultLength, lib, "chdb_result_length"},
		{&chdbResultError, lib, "chdb_result_error"},
		{&chdbDestroyResult, lib, "chdb_destroy_query_result"},
	} {
		sym, err := purego.Dlsym(b.handle, b.name)
		if err != nil {
			return fmt.Errorf("chdb: %s lacks %s (not a libchdb this package supports): %w", engine, b.name, err)
		}
		purego.RegisterFunc(b.fn, sym)
	}
	if pyIsInitialized() == 0 {
		pyInitializeEx(0) // 0: leave signal handling to Go
	}
	if pyInitChdb() == 0 {
		if pyErrOccurred() != 0 {
			pyErrPrint()
		}
		return fmt.Errorf("chdb: initialising %s failed", engine)
	}
	pyEvalSaveThread()
	return nil
}

// Conn is one chdb session on a data directory. A process can hold one
// session at a time; its queries run one after another.
type Conn struct {
	mu   sync.Mutex
	conn *unsafe.Pointer // chdb_connection*
}

// Open starts a session on dataDir (created if missing) with the library
// installed in libDir (DefaultDir when empty). settings are ClickHouse
// settings for every query of the session, e.g. "output_format_json_quote_64bit_integers=0".
func Open(libDir, dataDir string, settings ...string) (*Conn, error) {
	if libDir == "" {
		libDir = DefaultDir()
	}
	if err := load(libDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("chdb: data dir: %w", err)
	}
	args := []string{"clickhouse", "--path=" + dataDir}
	for _, s := range settings {
		args = append(args, "--"+s)
	}
	cargs := make([]*byte, len(args)+1)
	keep := make([][]byte, len(args))
	for i, a := range args {
		keep[i] = append([]byte(a), 0)
		cargs[i] = &keep[i][0]
	}
	conn := chdbConnect(int32(len(args)), &cargs[0])
	runtime.KeepAlive(keep)
	goSignals.restore()
	if conn == nil || *conn == nil {
		return nil, fmt.Errorf("chdb: connect to %s failed (is another session open in this process?)", dataDir)
	}
	return &Conn{conn: conn}, nil
}

// Query runs one statement and returns its output in format (e.g.
// "JSONEachRow", "CSVWithNames"); statements without output return nil.
func (c *Conn) Query(query, format string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil, errors.New("chdb: session closed")
	}
	// chdb_query takes the chdb_connection the connect call pointed to.
	res := chdbQuery(*c.conn, query, format)
	goSignals.restore() // a query may install SIGTSTP and SIGRTMIN handlers
	if res == nil {
		return nil, errors.New("chdb: query returned no result")
	}
	defer chdbDestroyResult(res)
	if e := chdbResultError(res); e != nil {
		return nil, fmt.Errorf("chdb: %s", strings.TrimSpace(goString(e)))
	}
	n := int(chdbResultLength(res))
	if n == 0 {
		return nil, nil
	}
	return append([]byte(nil), unsafe.Slice(chdbResultBuffer(res), n)...), nil
}

// Close ends the session; its data stays in the data directory.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		chdbCloseConn(c.conn)
		c.conn = nil
	}
	return nil
}

// goString copies the NUL-terminated C string at p.
func goString(p *byte) string {
	n := 0
	for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 {
		n++
	}
	return string(unsafe.Slice(p, n))
}
