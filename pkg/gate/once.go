package gate

import (
	"context"
	"fmt"
	"time"
)

// MarkOnce records name as seen for ttl and reports whether this call was the first
// to do so while the mark lives (SET NX PX on <prefix>:once:<name>): the way a signed
// request is accepted once. A Redis failure is an error (classified like the other
// errors of Store: errors.Is(err, store.ErrUnavailable) for transient faults), never
// a "first".
func (s *Store) MarkOnce(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	if name == "" || len(name) > MaxKeyLen {
		return false, fmt.Errorf("%w: a once-mark needs a name of 1 to %d bytes", ErrInvalid, MaxKeyLen)
	}
	if ttl <= 0 {
		return false, fmt.Errorf("%w: a once-mark needs a positive ttl", ErrInvalid)
	}
	k := s.OnceKey(name)
	first, err := s.rdb.SetNX(ctx, k, "1", ttl).Result()
	if err != nil {
		return false, s.wrap(err, "SET NX", k)
	}
	return first, nil
}

// OnceKey is the Redis key of the once-mark name.
func (s *Store) OnceKey(name string) string { return s.prefix + ":once:" + name }
