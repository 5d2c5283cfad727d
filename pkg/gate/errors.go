package gate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

// redisError is a failure talking to Redis, classified like pkg/store's errors:
// errors.Is(err, store.ErrUnavailable) for transient faults, store.ErrAuth for rejected
// credentials or permissions.
type redisError struct {
	msg   string
	class error // store.ErrUnavailable, store.ErrAuth or nil
	err   error
}

func (e *redisError) Error() string { return e.msg }
func (e *redisError) Unwrap() error { return e.err }
func (e *redisError) Is(target error) bool {
	return e.class != nil && target == e.class
}

func (s *Store) wrap(err error, what, key string) error {
	if err == nil {
		return nil
	}
	var re *redisError
	if errors.As(err, &re) {
		return err
	}
	var (
		ne    net.Error
		class error
		hint  string
	)
	switch {
	case redis.IsAuthError(err) || redis.IsPermissionError(err):
		class, hint = store.ErrAuth, " (check the Redis username, password and ACL)"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, redis.ErrPoolTimeout), redis.IsLoadingError(err),
		redis.IsReadOnlyError(err), redis.IsTryAgainError(err):
		class, hint = store.ErrUnavailable, " (is Redis running?)"
	}
	return &redisError{
		msg:   fmt.Sprintf("Redis at %s%s: %s %s: %v", s.addr, hint, what, key, err),
		class: class,
		err:   err,
	}
}
