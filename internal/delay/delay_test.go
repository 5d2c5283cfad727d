package delay

import (
	"testing"
	"time"
)

func TestDoublingUpToTheCeiling(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		first, max time.Duration
		want       []time.Duration
	}{
		{ms, 5 * ms, []time.Duration{ms, 2 * ms, 4 * ms, 5 * ms, 5 * ms}},
		{ms, 4 * ms, []time.Duration{ms, 2 * ms, 4 * ms, 4 * ms}},
		{time.Hour, time.Minute, []time.Duration{time.Minute, time.Minute}},
		{0, 0, []time.Duration{0, 0}},
		// never overflows, however many steps
		{ms, time.Duration(1<<63 - 1), nil},
	} {
		d := New(c.first, c.max)
		for i, w := range c.want {
			if got := d.Step(); got != w {
				t.Fatalf("New(%s, %s) step %d = %s, want %s", c.first, c.max, i+1, got, w)
			}
		}
		if c.want == nil {
			prev := time.Duration(0)
			for i := 0; i < 200; i++ {
				got := d.Step()
				if got < prev || got > c.max {
					t.Fatalf("New(%s, %s) step %d = %s after %s", c.first, c.max, i+1, got, prev)
				}
				prev = got
			}
		}
	}
}
