package observability

import (
	"context"
	"errors"
	"net"
	"strings"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// RedisHook returns the go-redis hook that traces each command and pipeline
// under the op that sends it: span "redis <command>" (or "redis pipeline"),
// with the command names only. Arguments are never recorded: they are the
// contexts' values, secrets included.
//
// It is ours rather than go-redis' redisotel, whose release for our go-redis
// requires a newer OpenTelemetry than knative and Tekton build with.
func RedisHook() redis.Hook { return redisHook{} }

type redisHook struct{}

func (redisHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (redisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		// checked before the span's name and attributes are built: most
		// commands run outside any trace
		if !inSpan(ctx) {
			return next(ctx, cmd)
		}
		ctx, span, _ := StartChild(ctx, "redis "+cmd.Name(), trace.SpanKindClient,
			attribute.String("db.system.name", "redis"), attribute.String("db.operation.name", cmd.Name()))
		err := next(ctx, cmd)
		End(span, redisError(err))
		return err
	}
}

func (redisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if !inSpan(ctx) {
			return next(ctx, cmds)
		}
		ctx, span, _ := StartChild(ctx, "redis pipeline", trace.SpanKindClient,
			attribute.String("db.system.name", "redis"), attribute.String("db.operation.name", pipelineNames(cmds)),
			attribute.Int("db.operation.batch.size", len(cmds)))
		err := next(ctx, cmds)
		End(span, redisError(err))
		return err
	}
}

// redisError is err unless it only says a key was missing (an answer, not a
// failure).
func redisError(err error) error {
	if errors.Is(err, redis.Nil) {
		return nil
	}
	return err
}

// pipelineNames lists the commands of a pipeline (at most 16, then "...").
func pipelineNames(cmds []redis.Cmder) string {
	names := make([]string, 0, min(len(cmds), 17))
	for i, c := range cmds {
		if i == 16 {
			names = append(names, "...")
			break
		}
		names = append(names, c.Name())
	}
	return strings.Join(names, " ")
}
