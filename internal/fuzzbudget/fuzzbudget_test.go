package fuzzbudget

import (
	"fmt"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

// recorder is a testing.TB whose Fatalf records the failure instead of
// ending the test.
type recorder struct {
	*testing.T
	failed string
}

func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }
func (r *recorder) Helper()                           {}

var sink []byte

func TestBytes(t *testing.T) {
	if got := Bytes(0, 0); got != Base {
		t.Fatalf("Bytes(0, 0) = %d, want %d", got, Base)
	}
	if got, want := Bytes(10, 1<<20), uint64(PerByte*(10+1<<20)+Base); got != want {
		t.Fatalf("Bytes(10, 1 MiB) = %d, want %d", got, want)
	}
	if got := Bytes(-5, -1); got != Base {
		t.Fatalf("Bytes(-5, -1) = %d, want %d", got, Base)
	}
	if got := Size("abc", []byte("de"), 7, nil); got != 5 {
		t.Fatalf("Size = %d, want 5", got)
	}
	if got := Renders("x", 3); got != 1 {
		t.Fatalf("Renders without templates = %d, want 1", got)
	}
	if got := Renders("{{ a }}{% if %}", []byte("{{{{"), "{"); got != 4 {
		t.Fatalf("Renders = %d, want 4", got)
	}
}

func TestMeasure(t *testing.T) {
	u := Measure(func() { sink = make([]byte, 10<<20) })
	if u.Bytes < 10<<20 || u.Bytes > 11<<20 || u.Mallocs < 1 {
		t.Fatalf("a 10 MiB allocation measured as %v", u)
	}
	u = Measure(func() { time.Sleep(50 * time.Millisecond) })
	if u.Elapsed < 50*time.Millisecond {
		t.Fatalf("a 50 ms sleep measured as %v", u)
	}
}

func TestCheck(t *testing.T) {
	r := &recorder{T: t}
	u := Check(r, Limit{Bytes: 20 << 20}, func() { sink = make([]byte, 10<<20) }, "small", []byte("in"))
	if r.failed != "" || u.Bytes < 10<<20 {
		t.Fatalf("10 MiB under a 20 MiB bound: failed %q, usage %v", r.failed, u)
	}

	r = &recorder{T: t}
	Check(r, Limit{Bytes: 20 << 20}, func() { sink = make([]byte, 30<<20) }, "big input", 3)
	switch {
	case raceEnabled && r.failed != "":
		t.Fatalf("30 MiB under -race, where allocation is not bounded: failure %q", r.failed)
	case !raceEnabled && (!strings.Contains(r.failed, `input: "big input", 3`) || !strings.Contains(r.failed, "30.0 MiB")):
		t.Fatalf("30 MiB over a 20 MiB bound: failure %q", r.failed)
	}

	r = &recorder{T: t}
	d := 10 * time.Millisecond
	Check(r, Limit{Time: d}, func() { time.Sleep(3 * d * (1 + 9*btoi(raceEnabled))) }, strings.Repeat("x", 1000))
	if !strings.Contains(r.failed, "over its budget (") || !strings.Contains(r.failed, "... (1000 bytes)") {
		t.Fatalf("a sleep of 3 × the time bound: failure %q", r.failed)
	}

	r = &recorder{T: t}
	var stack int
	Check(r, Limit{}, func() {
		stack = debug.SetMaxStack(1 << 30)
		debug.SetMaxStack(stack)
	})
	if r.failed != "" || stack != MaxStack {
		t.Fatalf("stack limit while the input ran = %d, want %d (failure %q)", stack, MaxStack, r.failed)
	}
	if after := debug.SetMaxStack(1 << 30); after == MaxStack {
		t.Fatalf("stack limit %d not restored", after)
	} else {
		debug.SetMaxStack(after)
	}
}

func btoi(b bool) time.Duration {
	if b {
		return 1
	}
	return 0
}

// TestHang: an input still running after HangFactor × its time bound stops
// the process with the input and the stacks (run in a child process).
func TestHang(t *testing.T) {
	if os.Getenv("FUZZBUDGET_HANG") == "1" {
		Check(t, Limit{Time: 10 * time.Millisecond / (1 + 9*btoi(raceEnabled))}, func() { time.Sleep(5 * time.Second) }, "hanging input")
		t.Fatal("Check returned from a hang")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHang$")
	cmd.Env = append(os.Environ(), "FUZZBUDGET_HANG=1")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the hanging child exited cleanly:\n%s", out)
	}
	for _, want := range []string{`input still running after 60ms (a hang); input: "hanging input"`, "time.Sleep"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("the child's output lacks %q:\n%s", want, out)
		}
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("the hang was reported after %v", d)
	}
}
