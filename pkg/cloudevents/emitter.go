// Package cloudevents sends CloudEvents about cicd contexts and approval gates
// to the sink an administrator configures (config.yaml cloudEvents.sink, see
// docs/observability.md), the way Tekton sends its own to
// default-cloud-events-sink.
//
// Sending never holds up an op: Emit puts the event in a bounded queue and
// returns at once; one worker sends the queue in order over the CloudEvents
// Go SDK's HTTP binding, retrying a failed send with exponential backoff up
// to a number of attempts. An event that finds the queue full is dropped and
// counted; so is one that used up its attempts. Delivery is at least once:
// the sink deduplicates by the event id.
package cloudevents

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	ce "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/google/uuid"
)

// The event types.
const (
	// TypeContextChanged: a write changed a context; the data is its
	// history entry (pkg/history.Entry, values redacted).
	TypeContextChanged = "dev.cicdstatemgr.context.changed"
	// TypeGateWaiting: an op opened an approval gate and its CustomRun waits
	// for a decision; the data is a Gate.
	TypeGateWaiting = "dev.cicdstatemgr.gate.waiting"
	// TypeGateDecided: an approval gate has its outcome (decided, timed out
	// or cancelled); the data is a Gate with its outcome.
	TypeGateDecided = "dev.cicdstatemgr.gate.decided"
)

// Source is the source attribute of every event.
const Source = "/cicdstatemgr/controller"

// Defaults of Settings.
const (
	DefaultQueueSize   = 1000
	DefaultMaxAttempts = 5
	DefaultTimeout     = 5 * time.Second
	DefaultBackoff     = 100 * time.Millisecond
	DefaultMaxBackoff  = 5 * time.Second
)

// Settings are what the administrator sets (config.yaml cloudEvents).
type Settings struct {
	// Sink is the absolute http(s) URL events are sent to; empty: none are.
	Sink string
	// QueueSize bounds the events waiting to be sent; past it new events
	// are dropped. 0: DefaultQueueSize.
	QueueSize int
	// MaxAttempts bounds the sends of one event. 0: DefaultMaxAttempts.
	MaxAttempts int
}

func (s Settings) withDefaults() Settings {
	if s.QueueSize <= 0 {
		s.QueueSize = DefaultQueueSize
	}
	if s.MaxAttempts <= 0 {
		s.MaxAttempts = DefaultMaxAttempts
	}
	return s
}

// Emitter queues events and sends them to the sink. The zero value is not
// usable: call New. A nil *Emitter emits nothing, which keeps callers free of
// checks.
type Emitter struct {
	// Timeout bounds one send (connect, write, read the status).
	Timeout time.Duration
	// Backoff is the wait before the second attempt; it doubles (with
	// jitter) for each further attempt, up to MaxBackoff.
	Backoff, MaxBackoff time.Duration

	client  ce.Client
	metrics *Metrics

	mu       sync.Mutex
	settings Settings
	queue    []queued
	wake     chan struct{} // one pending wake-up of the worker
}

type queued struct {
	sink  string
	event ce.Event
}

// New returns an emitter sending over rt (nil: a clone of
// http.DefaultTransport), counting in m (nil: nowhere). Call Run to start
// sending.
func New(rt http.RoundTripper, m *Metrics) (*Emitter, error) {
	if rt == nil {
		rt = http.DefaultTransport.(*http.Transport).Clone()
	}
	p, err := cehttp.New(cehttp.WithClient(http.Client{Transport: rt}))
	if err != nil {
		return nil, err
	}
	c, err := ce.NewClient(p, ce.WithTimeNow())
	if err != nil {
		return nil, err
	}
	return &Emitter{
		Timeout: DefaultTimeout, Backoff: DefaultBackoff, MaxBackoff: DefaultMaxBackoff,
		client: c, metrics: m, settings: Settings{}.withDefaults(), wake: make(chan struct{}, 1),
	}, nil
}

// Configure installs new settings (a configuration reload). Events already
// queued are sent to the sink current when they were emitted; when the new
// queue is smaller, the oldest beyond it are dropped.
func (e *Emitter) Configure(s Settings) {
	if e == nil {
		return
	}
	s = s.withDefaults()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.settings = s
	e.metrics.configured(s.Sink)
	for len(e.queue) > s.QueueSize {
		e.metrics.dropped(e.queue[0].event.Type())
		e.queue = e.queue[1:]
	}
}

// Emit queues an event of type typ about subject (namespace/id) with data as
// its JSON payload. It never blocks: with no sink configured it does nothing;
// with the queue full the event is dropped and counted. It reports whether the
// event was queued.
func (e *Emitter) Emit(typ, subject string, data any) bool {
	if e == nil {
		return false
	}
	e.mu.Lock()
	s := e.settings
	e.mu.Unlock()
	if s.Sink == "" {
		return false
	}
	ev := ce.NewEvent()
	ev.SetID(uuid.NewString())
	ev.SetType(typ)
	ev.SetSource(Source)
	ev.SetSubject(subject)
	ev.SetTime(time.Now().UTC())
	if err := ev.SetData(ce.ApplicationJSON, data); err != nil {
		e.metrics.failed(typ)
		return false
	}
	e.mu.Lock()
	if len(e.queue) >= e.settings.QueueSize {
		e.mu.Unlock()
		e.metrics.dropped(typ)
		return false
	}
	e.queue = append(e.queue, queued{sink: s.Sink, event: ev})
	e.metrics.queued(len(e.queue))
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default: // the worker is already told
	}
	return true
}

// Run sends queued events until ctx is done.
func (e *Emitter) Run(ctx context.Context) {
	for {
		q, ok := e.next()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-e.wake:
			}
			continue
		}
		e.deliver(ctx, q)
	}
}

func (e *Emitter) next() (queued, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.queue) == 0 {
		return queued{}, false
	}
	q := e.queue[0]
	e.queue[0] = queued{}
	e.queue = e.queue[1:]
	e.metrics.queued(len(e.queue))
	return q, true
}

// deliver sends one event, retrying with backoff; it counts the event sent
// or failed.
func (e *Emitter) deliver(ctx context.Context, q queued) {
	e.mu.Lock()
	attempts := e.settings.MaxAttempts
	e.mu.Unlock()
	typ := q.event.Type()
	wait := e.Backoff
	for n := 1; ; n++ {
		err := e.send(ctx, q)
		if err == nil {
			e.metrics.sent(typ)
			return
		}
		if n >= attempts || !retryable(err) || ctx.Err() != nil {
			e.metrics.failed(typ)
			return
		}
		select {
		case <-ctx.Done():
			e.metrics.failed(typ)
			return
		case <-time.After(jitter(wait)):
		}
		wait = min(2*wait, e.MaxBackoff)
	}
}

func (e *Emitter) send(ctx context.Context, q queued) error {
	sctx, cancel := context.WithTimeout(ce.ContextWithTarget(ctx, q.sink), e.Timeout)
	defer cancel()
	res := e.client.Send(sctx, q.event)
	if ce.IsACK(res) {
		return nil
	}
	return res
}

// retryable: no reply, or a reply that may change (408, 429, 5xx). Other
// statuses are the sink refusing the event: sending it again is no use.
func retryable(err error) bool {
	var r *cehttp.Result
	if errors.As(err, &r) && r.StatusCode != 0 {
		return r.StatusCode == http.StatusRequestTimeout || r.StatusCode == http.StatusTooManyRequests || r.StatusCode >= 500
	}
	return true
}

// jitter spreads retries of many controllers: d ± 20%.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d + time.Duration((rand.Float64()*0.4-0.2)*float64(d))
}

// Queued is the number of events waiting to be sent.
func (e *Emitter) Queued() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.queue)
}
