// Package delay is the delay between the retries of the store's optimistic
// transactions and of the HTTP client's calls: a first delay doubled at each
// step, up to a ceiling. Each caller adds its own jitter.
//
// It is a few lines of our own rather than k8s.io/apimachinery's wait.Backoff,
// which would link klog and its init into the CLI, whose start-up is measured
// against a Go hello world (README, Benchmarks).
package delay

import "time"

// Doubling yields first, 2×first, 4×first... at most max. The zero value
// yields 0 forever. It is not safe for concurrent use (one per retry loop).
type Doubling struct {
	next, max time.Duration
}

// New returns the delays first, 2×first... capped at max (first itself is
// capped at max too).
func New(first, max time.Duration) Doubling {
	return Doubling{next: min(first, max), max: max}
}

// Step returns the next delay.
func (d *Doubling) Step() time.Duration {
	cur := d.next
	if d.next < d.max/2 {
		d.next *= 2
	} else {
		d.next = d.max
	}
	return cur
}
