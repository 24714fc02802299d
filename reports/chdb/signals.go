//go:build !nochdb

package chdb

import (
	"fmt"

	"github.com/ebitengine/purego"
)

// The engine installs its own handlers for fatal signals (SIGSEGV, SIGBUS,
// ...) when it loads and when a session starts. Go must keep its handlers:
// it turns a nil dereference into a panic, preempts goroutines with
// SIGURG, and delivers SIGINT/SIGTERM to os/signal. So the handlers are
// saved before the engine touches them and put back afterwards.

// sigactionSize covers glibc's struct sigaction on 64-bit Linux (152 bytes).
const sigactionSize = 256

const maxSignal = 64

type signalState [maxSignal + 1][sigactionSize]byte

var libcSigaction func(sig int32, act, old *byte) int32

func bindSigaction() error {
	libc, err := purego.Dlopen("libc.so.6", purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return fmt.Errorf("chdb: load libc: %w", err)
	}
	purego.RegisterLibFunc(&libcSigaction, libc, "sigaction")
	return nil
}

// saveSignals records the handler of every signal.
func saveSignals() *signalState {
	var s signalState
	for sig := int32(1); sig <= maxSignal; sig++ {
		libcSigaction(sig, nil, &s[sig][0])
	}
	return &s
}

// restore puts back every handler that differs from the saved one and
// reports how many it put back.
func (s *signalState) restore() int {
	now := saveSignals()
	n := 0
	for sig := int32(1); sig <= maxSignal; sig++ {
		if !sameHandler(&now[sig], &s[sig]) {
			libcSigaction(sig, &s[sig][0], nil)
			n++
		}
	}
	return n
}

// sameHandler compares what decides delivery: the handler (offset 0) and
// sa_flags (offset 136). sa_restorer differs whenever libc rather than the
// Go runtime set the handler, and only returns from it.
func sameHandler(a, b *[sigactionSize]byte) bool {
	return [8]byte(a[0:8]) == [8]byte(b[0:8]) && [4]byte(a[136:140]) == [4]byte(b[136:140])
}
