package httpclient

import (
	"testing"
	"time"
)

// TestBackoffWaits checks that wait n of one Do lies in [d/2, d] with
// d = Backoff doubled n-1 times, at most MaxBackoff.
func TestBackoffWaits(t *testing.T) {
	for _, c := range []*Client{
		{},
		{Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond},
		{Backoff: time.Hour, MaxBackoff: time.Minute},
	} {
		base := c.Backoff
		if base == 0 {
			base = DefaultBackoff
		}
		for trial := 0; trial < 200; trial++ {
			delays, ceiling := c.backoff()
			for n := 1; n < 8; n++ {
				d := min(base<<(n-1), ceiling)
				if got := delays.Step(); got < d/2 || got > d {
					t.Fatalf("Backoff %s, MaxBackoff %s: wait %d is %s, want [%s, %s]", c.Backoff, c.MaxBackoff, n, got, d/2, d)
				}
			}
		}
	}
}
