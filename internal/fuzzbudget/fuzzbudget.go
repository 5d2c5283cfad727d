// Package fuzzbudget checks that one fuzz input stays within a resource
// budget: the threat model's rule 6 says every input has a budget in time,
// memory and size, and a Go fatal error (stack overflow) must be impossible.
// A fuzz target that only checks "no panic" passes an input that allocates
// gigabytes or runs for minutes; Check fails it, naming the input and what
// it used.
//
// # What is measured, and why the measurement is per input
//
// Check reads runtime.MemStats before and after the input and reports the
// growth of TotalAlloc (bytes allocated on the heap, freed or not) and of
// Mallocs, and the wall time. MemStats is process-wide, so the numbers are
// the input's own only when nothing else runs meanwhile. That holds here:
//
//   - go test -fuzz runs each fuzzing worker as a separate process (the
//     coordinator forks -parallel workers), and a worker runs its inputs one
//     after another, each to completion, in its test goroutine; the
//     mutator runs between inputs, not during one;
//   - without -fuzz, go test runs the seed corpus of a fuzz target as
//     sequential subtests after every Test function has finished, so no
//     parallel test of the package runs beside it.
//
// What remains is background work of the test binary (a Redis client's pool,
// an in-process server's goroutines, the runtime): a few kilobytes per
// input, far below the Base allowance. TotalAlloc is monotonic, so the
// garbage collector running in between does not hide an allocation; the
// bound is on what an input makes the process allocate, which is what
// drives the controller's RSS and GC CPU.
//
// # Bounds
//
// An allocation bound is linear in what the input may legitimately make the
// code handle: Bytes(in, budget) = PerByte × (in + budget) + Base, where in
// is the input's size and budget the configured size cap on what is built
// from it (a render's output cap, a value's size budget, 0 when nothing
// grows beyond the input). An amplification ("billion laughs", a filter
// padding to 200 MB, a doubling loop) exceeds it by orders of magnitude; a
// linear parser on a large input does not.
//
// A time bound is a hang detector, not a performance measurement: Time is
// generous (seconds, where a budgeted input takes milliseconds), so that it
// never fails on a loaded 2-core machine under the fuzzer's coverage
// instrumentation or the race detector, and only an input whose work is not
// bounded by a budget exceeds it. An input still running after
// HangFactor × the time bound is a hang: go test -fuzz has no per-input
// timeout and would wait forever, so Check then panics from a watchdog
// goroutine with the input and every goroutine's stack; the worker dies and
// the fuzzer records the input as a failure.
//
// Under the race detector (go test -race runs the seed corpora too) the
// time bound is RaceSlowdown times longer and allocation is not bounded:
// the race detector makes sync.Pool drop items at random, so code that
// reuses pooled buffers (regexp's matchers, fmt's printers) allocates anew
// on each use; a YAML seed that allocates 4 MiB without it allocates
// 900 MiB with it. Allocation is bounded in the runs without -race (make
// check, the fuzz phase).
//
// While the input runs, the goroutine stack limit is lowered to
// Limit.Stack (default MaxStack) from the runtime's 1 GB: a recursion whose
// depth follows the input's size then fails quickly with "goroutine stack
// exceeds" (a fatal error, recorded by the fuzzer as a failing input)
// instead of after minutes, or never within the fuzzer's inputs.
package fuzzbudget

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

const (
	// PerByte is the bytes an input may allocate for each byte of input or
	// of size budget: parsing, copying and encoding take a few passes over
	// the data, each building values several times its text's size.
	PerByte = 64
	// Base is the allocation every input may use whatever its size: a
	// Redis round trip, a compiled template, a parser's tables, the
	// background goroutines of the test binary.
	Base = 32 << 20
	// Time is the default wall-time bound of one input.
	Time = 10 * time.Second
	// HangFactor × the time bound is when a still-running input is
	// reported as a hang (the process is stopped).
	HangFactor = 6
	// MaxStack is the default goroutine stack limit while an input runs.
	MaxStack = 64 << 20
	// RaceSlowdown scales the time bound under the race detector, which
	// makes code 2 to 20 times slower.
	RaceSlowdown = 10
)

// Bytes is the allocation bound of an input of in bytes whose work is
// capped by a size budget of budget bytes (see the package doc).
func Bytes(in, budget int64) uint64 {
	if in < 0 {
		in = 0
	}
	if budget < 0 {
		budget = 0
	}
	return uint64(PerByte)*uint64(in+budget) + Base
}

// Limit is what one input may use. Zero fields take the defaults: Time,
// Bytes(0, 0), MaxStack.
type Limit struct {
	Time  time.Duration
	Bytes uint64
	Stack int
}

// For is the limit of an input of in bytes with a size budget of budget
// bytes, and the default time and stack.
func For(in, budget int64) Limit { return Limit{Bytes: Bytes(in, budget)} }

// Usage is what one run of an input used.
type Usage struct {
	Elapsed time.Duration
	Bytes   uint64 // heap bytes allocated (growth of MemStats.TotalAlloc)
	Mallocs uint64 // heap objects allocated (growth of MemStats.Mallocs)
}

func (u Usage) String() string {
	return fmt.Sprintf("%v, %.1f MiB in %d allocations", u.Elapsed.Round(time.Millisecond), float64(u.Bytes)/(1<<20), u.Mallocs)
}

// Measure runs f and returns what it used (see the package doc for when the
// numbers are f's own).
func Measure(f func()) Usage {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	f()
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	return Usage{Elapsed: elapsed, Bytes: after.TotalAlloc - before.TotalAlloc, Mallocs: after.Mallocs - before.Mallocs}
}

// Size is the total length of the string and []byte values in input, the
// in of Bytes for a fuzz target's arguments.
func Size(input ...any) int64 {
	var n int64
	for _, v := range input {
		switch t := v.(type) {
		case string:
			n += int64(len(t))
		case []byte:
			n += int64(len(t))
		}
	}
	return n
}

// Renders is the number of templates in input (its "{{" and "{%", at least
// 1): an operation may spend one render budget on each template it is given,
// so a fuzz target whose input holds templates scales its bounds by it.
func Renders(input ...any) int64 {
	n := int64(0)
	for _, v := range input {
		var s string
		switch t := v.(type) {
		case string:
			s = t
		case []byte:
			s = string(t)
		default:
			continue
		}
		n += int64(strings.Count(s, "{{") + strings.Count(s, "{%"))
	}
	return max(n, 1)
}

// Check runs f, the work of one fuzz input, and fails t (from the calling
// goroutine, which must be the test's) when it ran longer than lim.Time or
// allocated more than lim.Bytes (under -race: RaceSlowdown × lim.Time and
// any allocation, see the package doc); the failure shows the input (the fuzz
// target's arguments) and the usage. An f still running after HangFactor ×
// lim.Time stops the process with the same report (see the package doc).
// It returns the usage.
func Check(t testing.TB, lim Limit, f func(), input ...any) Usage {
	t.Helper()
	if lim.Time <= 0 {
		lim.Time = Time
	}
	if lim.Bytes == 0 {
		lim.Bytes = Bytes(0, 0)
	}
	if raceEnabled {
		lim.Time *= RaceSlowdown
		lim.Bytes = math.MaxUint64
	}
	if lim.Stack <= 0 {
		lim.Stack = MaxStack
	}
	hang := time.AfterFunc(HangFactor*lim.Time, func() {
		fmt.Fprintf(os.Stderr, "fuzzbudget: %s: input still running after %v (a hang); input: %s\n", t.Name(), HangFactor*lim.Time, Describe(input...))
		debug.SetTraceback("all")
		panic(fmt.Sprintf("fuzzbudget: %s: input still running after %v", t.Name(), HangFactor*lim.Time))
	})
	oldStack := debug.SetMaxStack(lim.Stack)
	u := Measure(f)
	debug.SetMaxStack(oldStack)
	hang.Stop()
	if u.Elapsed > lim.Time || u.Bytes > lim.Bytes {
		t.Fatalf("input over its budget (%v, %s): used %v\ninput: %s",
			lim.Time, mib(lim.Bytes), u, Describe(input...))
	}
	return u
}

func mib(n uint64) string {
	if n == math.MaxUint64 {
		return "any allocation"
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// Describe formats a fuzz target's arguments for a report: each quoted,
// long ones cut to their first 300 bytes with their length.
func Describe(input ...any) string {
	parts := make([]string, len(input))
	for i, v := range input {
		switch t := v.(type) {
		case string:
			parts[i] = quote(t)
		case []byte:
			parts[i] = "[]byte(" + quote(string(t)) + ")"
		default:
			parts[i] = fmt.Sprintf("%#v", v)
		}
	}
	return strings.Join(parts, ", ")
}

func quote(s string) string {
	const max = 300
	if len(s) <= max {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q... (%d bytes)", s[:max], len(s))
}
