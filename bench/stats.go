package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

type stats struct {
	n                       int
	min, p50, p95, p99, max time.Duration
	mean                    time.Duration
	sorted                  []time.Duration
}

// summarize computes nearest-rank percentiles.
func summarize(d []time.Duration) stats {
	s := stats{n: len(d)}
	if len(d) == 0 {
		return s
	}
	s.sorted = slices.Clone(d)
	slices.Sort(s.sorted)
	var sum time.Duration
	for _, v := range s.sorted {
		sum += v
	}
	s.mean = sum / time.Duration(len(d))
	s.min, s.max = s.sorted[0], s.sorted[len(d)-1]
	s.p50, s.p95, s.p99 = percentile(s.sorted, 50), percentile(s.sorted, 95), percentile(s.sorted, 99)
	return s
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// ms prints a duration in milliseconds with 3 significant digits or so.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case d == 0:
		return "-"
	case v < 10:
		return fmt.Sprintf("%.2f ms", v)
	case v < 100:
		return fmt.Sprintf("%.1f ms", v)
	default:
		return fmt.Sprintf("%.0f ms", v)
	}
}

func us(d time.Duration) string {
	return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}
