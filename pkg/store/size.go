package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// ErrTooLarge: a write would make a stored context larger than the store's
// MaxContextBytes (config budgets.contextBytes). Nothing was written.
var ErrTooLarge = errors.New("cicd context too large")

// The size of a stored context is its encoded size: the sum, over the fields
// of its Redis hash (the order field included), of the length of the field
// name plus the length of the value (the JSON of a top-level key or of a
// state key). Put and Update know every field after the change; UpdatePaths
// reads only some fields, so when its write grows what it loaded it asks
// Redis for the length of every other field (HSTRLEN, pipelined in one round
// trip inside the WATCH; HMGET when the ACL user may not send HSTRLEN) and
// sums. A write that does not grow the context is
// never refused (a context over a lowered budget can still be trimmed).

func (s *Store) tooLarge(ref string, size int64) error {
	return fmt.Errorf("%w: cicd context %s would be %d bytes encoded, over the budget of %d bytes (budgets.contextBytes); nothing was written",
		ErrTooLarge, ref, size, s.maxContext)
}

// encodedSize is the size of a context encoded as enc.
func (e *encoded) size() int64 {
	n := int64(len(fieldOrder) + len(e.lay.encode()))
	for f, b := range e.fields {
		n += int64(len(f) + len(b))
	}
	return n
}

// hashSize is the size of a hash read whole.
func hashSize(h map[string]string) int64 {
	var n int64
	for f, v := range h {
		n += int64(len(f) + len(v))
	}
	return n
}

// checkPut refuses a whole encoded context over the budget.
func (s *Store) checkPut(ref string, enc *encoded) error {
	if s.maxContext <= 0 {
		return nil
	}
	if n := enc.size(); n > s.maxContext {
		return s.tooLarge(ref, n)
	}
	return nil
}

// checkUpdate refuses a rewritten context over the budget when it grew.
func (s *Store) checkUpdate(ref string, old int64, enc *encoded) error {
	if s.maxContext <= 0 || enc == nil {
		return nil
	}
	if n := enc.size(); n > s.maxContext && n > old {
		return s.tooLarge(ref, n)
	}
	return nil
}

// checkPartial refuses the writes and deletions of a partial update when
// they grow the context past the budget. raw holds the loaded fields; the
// lengths of the other fields of lay are asked from Redis (c, inside the
// transaction's WATCH) only when the write grows the context.
func (s *Store) checkPartial(ctx context.Context, c redis.Cmdable, ref, key string, lay *layout, raw map[string]string, order string, writes []any, dels []string) error {
	if s.maxContext <= 0 || len(writes) == 0 {
		return nil
	}
	// the change in size of the fields written or deleted
	var delta int64
	touched := map[string]bool{}
	for i := 0; i+1 < len(writes); i += 2 {
		f, _ := writes[i].(string)
		nb := writes[i+1].([]byte)
		touched[f] = true
		cur, known := raw[f]
		if f == fieldOrder {
			cur, known = order, true
		}
		if known {
			delta += int64(len(nb) - len(cur))
		} else {
			delta += int64(len(f) + len(nb))
		}
	}
	for _, f := range dels {
		touched[f] = true
		if cur, ok := raw[f]; ok {
			delta -= int64(len(f) + len(cur))
		}
	}
	if delta <= 0 {
		return nil
	}
	// the size after the change: the order field, the fields touched, then
	// the rest as they are stored
	var n int64
	var others []string
	for _, f := range lay.fieldNames() {
		if touched[f] {
			continue
		}
		if cur, ok := raw[f]; ok {
			n += int64(len(f) + len(cur))
			continue
		}
		others = append(others, f)
	}
	if !touched[fieldOrder] {
		n += int64(len(fieldOrder) + len(order))
	}
	for i := 0; i+1 < len(writes); i += 2 {
		f, _ := writes[i].(string)
		n += int64(len(f) + len(writes[i+1].([]byte)))
	}
	if len(others) > 0 {
		m, err := fieldLengths(ctx, c, key, others)
		if err != nil {
			return err
		}
		n += m
	}
	if n > s.maxContext {
		return s.tooLarge(ref, n)
	}
	return nil
}

// fieldNames lists the hash fields (but the order field) of a layout.
func (l *layout) fieldNames() []string {
	out := make([]string, 0, len(l.keys)+len(l.state))
	for _, k := range l.keys {
		if k == stateKey && l.split {
			for _, sk := range l.state {
				out = append(out, stateField(sk))
			}
			continue
		}
		out = append(out, topField(k))
	}
	return out
}

// fieldLengths sums the lengths of the names and values of fields of key:
// HSTRLEN, pipelined; when the ACL user may not send HSTRLEN (NOPERM, an ACL
// line from before the budgets), HMGET of the same fields.
func fieldLengths(ctx context.Context, c redis.Cmdable, key string, fields []string) (int64, error) {
	var n int64
	cmds := make([]*redis.IntCmd, len(fields))
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, f := range fields {
			cmds[i] = p.HStrLen(ctx, key, f)
		}
		return nil
	})
	if err == nil {
		for i, f := range fields {
			n += int64(len(f)) + cmds[i].Val()
		}
		return n, nil
	}
	if !strings.HasPrefix(err.Error(), "NOPERM") {
		return 0, err
	}
	vals, err := c.HMGet(ctx, key, fields...).Result()
	if err != nil {
		return 0, err
	}
	for i, v := range vals {
		if s, ok := v.(string); ok {
			n += int64(len(fields[i]) + len(s))
		}
	}
	return n, nil
}
