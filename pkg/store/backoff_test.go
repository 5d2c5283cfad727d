package store

import (
	"context"
	"testing"
	"time"
)

// TestTxBackoffSteps checks the bounds of the waits between optimistic retries:
// 0.5ms doubling up to 25ms, each wait drawn from [0, step].
func TestTxBackoffSteps(t *testing.T) {
	us := time.Microsecond
	want := []time.Duration{500 * us, 1000 * us, 2000 * us, 4000 * us, 8000 * us, 16000 * us, 25000 * us, 25000 * us, 25000 * us}
	b := txBackoff()
	for i, w := range want {
		if got := b.Step(); got != w {
			t.Fatalf("step %d = %s, want %s", i+1, got, w)
		}
	}

	ctx := context.Background()
	b = txBackoff()
	for i := 0; i < 3; i++ {
		start := time.Now()
		if err := backoff(ctx, &b); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("backoff %d slept %s", i+1, d)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := backoff(cancelled, &b); err != context.Canceled {
		t.Fatalf("backoff after cancel = %v", err)
	}
}
