package gate_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/gate"
)

func TestRegisterIsIdempotentPerKey(t *testing.T) {
	ctx := testCtx(t)
	s := newStore(t)
	first, err := s.Register(ctx, pending("run-1", "c1", "yes", "no"))
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Token) < 32 || first.CreatedAt.IsZero() {
		t.Fatalf("Register did not fill token/createdAt: %+v", first)
	}
	again := pending("run-1", "c1", "other")
	again.Title = "changed"
	second, err := s.Register(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	if second.Token != first.Token || second.Title != "Deploy?" || len(second.Options) != 2 || !second.CreatedAt.Equal(first.CreatedAt) {
		t.Fatalf("second Register = %+v, want the first %+v", second, first)
	}
	got, d, err := s.Get(ctx, "run-1")
	if err != nil || d != nil || got.Token != first.Token {
		t.Fatalf("Get = %+v %v %v", got, d, err)
	}
	// No second token was indexed.
	prefix := strings.TrimSuffix(s.RecordKey(""), ":gate:")
	if keys := srv.Client().Keys(ctx, prefix+":gate-by-token:*").Val(); len(keys) != 1 {
		t.Fatalf("token index keys %v, want exactly one", keys)
	}
	bad := []gate.Gate{
		{Key: "", Options: []gate.Option{{Value: "a"}}},
		{Key: "k"},
		{Key: "k", Options: []gate.Option{{Value: ""}}},
		{Key: "k", Options: []gate.Option{{Value: "a"}, {Value: "a"}}},
		{Key: strings.Repeat("k", gate.MaxKeyLen+1), Options: []gate.Option{{Value: "a"}}},
	}
	for i, p := range bad {
		if _, err := s.Register(ctx, p); !errors.Is(err, gate.ErrInvalid) {
			t.Errorf("bad pending %d: err = %v, want ErrInvalid", i, err)
		}
	}
}

func TestDecideByEachLookup(t *testing.T) {
	ctx := testCtx(t)
	s := newStore(t)
	cases := []struct {
		name   string
		lookup func(p gate.Gate) gate.Lookup
	}{
		{"key", func(p gate.Gate) gate.Lookup { return gate.Lookup{Key: p.Key} }},
		{"context", func(p gate.Gate) gate.Lookup { return gate.Lookup{ContextID: p.ContextID} }},
		{"slack", func(p gate.Gate) gate.Lookup {
			return gate.Lookup{SlackChannel: p.SlackChannel, SlackTS: p.SlackTS}
		}},
		{"token", func(p gate.Gate) gate.Lookup { return gate.Lookup{Token: p.Token} }},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key, ctxID := "run-"+c.name, "ctx-"+c.name
			p, err := s.Register(ctx, pending(key, ctxID, "approve", "reject"))
			if err != nil {
				t.Fatal(err)
			}
			ts := fmt.Sprintf("1700000000.00010%d", i)
			if err := s.AttachSlackMessage(ctx, key, "C1", ts); err != nil {
				t.Fatal(err)
			}
			p.SlackChannel, p.SlackTS = "C1", ts
			at := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
			gotP, d, err := s.Decide(ctx, c.lookup(p), gate.Decision{Choice: "reject", ChosenBy: "alice", Via: gate.ViaCLI, At: at})
			if err != nil {
				t.Fatal(err)
			}
			if gotP.Key != key || d.Choice != "reject" || d.ChosenBy != "alice" || !d.At.Equal(at) {
				t.Fatalf("Decide = %+v %+v", gotP, d)
			}
			stored, sd, err := s.Get(ctx, key)
			if err != nil || sd == nil || *sd != d || stored.SlackChannel != "C1" || stored.SlackTS != ts {
				t.Fatalf("Get = %+v %+v %v", stored, sd, err)
			}
		})
	}
	// Unknown things are ErrNotFound, whatever the lookup.
	for _, l := range []gate.Lookup{{Key: "nope"}, {ContextID: "nope"}, {SlackChannel: "C1", SlackTS: "1.2"}, {Token: "nope"}} {
		if _, _, err := s.Decide(ctx, l, gate.Decision{Choice: "approve", ChosenBy: "bob"}); !errors.Is(err, gate.ErrNotFound) {
			t.Errorf("%v: err = %v, want ErrNotFound", l, err)
		}
	}
	if _, _, err := s.Decide(ctx, gate.Lookup{}, gate.Decision{Choice: "approve", ChosenBy: "bob"}); !errors.Is(err, gate.ErrInvalid) {
		t.Errorf("empty lookup: err = %v", err)
	}
}

func TestContextIndexPointsAtLatestAndSlackIndexMoves(t *testing.T) {
	ctx := testCtx(t)
	s := newStore(t)
	for _, k := range []string{"old", "new"} {
		if _, err := s.Register(ctx, pending(k, "c1", "go")); err != nil {
			t.Fatal(err)
		}
	}
	p, _, err := s.Decide(ctx, gate.Lookup{ContextID: "c1"}, gate.Decision{Choice: "go", ChosenBy: "x"})
	if err != nil || p.Key != "new" {
		t.Fatalf("by context decided %q (%v), want the latest", p.Key, err)
	}
	if err := s.AttachSlackMessage(ctx, "old", "C1", "1.1"); err != nil {
		t.Fatal(err)
	}
	if err := s.AttachSlackMessage(ctx, "old", "C1", "2.2"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Decide(ctx, gate.Lookup{SlackChannel: "C1", SlackTS: "1.1"}, gate.Decision{Choice: "go", ChosenBy: "x"}); !errors.Is(err, gate.ErrNotFound) {
		t.Fatalf("old message still finds the gate: %v", err)
	}
	if p, _, err := s.Decide(ctx, gate.Lookup{SlackChannel: "C1", SlackTS: "2.2"}, gate.Decision{Choice: "go", ChosenBy: "x"}); err != nil || p.Key != "old" {
		t.Fatalf("new message: %q %v", p.Key, err)
	}
	if err := s.AttachSlackMessage(ctx, "missing", "C1", "3.3"); !errors.Is(err, gate.ErrNotFound) {
		t.Fatalf("attach to a missing choice: %v", err)
	}
}

func TestExactlyOneWinnerAmongConcurrentDecides(t *testing.T) {
	ctx := testCtx(t)
	stores := newStores(t, 4)
	if _, err := stores[0].Register(ctx, pending("race", "c1", "a", "b")); err != nil {
		t.Fatal(err)
	}
	const n = 20
	type result struct {
		d   gate.Decision
		err error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			opt := []string{"a", "b"}[i%2]
			_, d, err := stores[i%len(stores)].Decide(ctx, gate.Lookup{Key: "race"},
				gate.Decision{Choice: opt, ChosenBy: fmt.Sprintf("user%d", i)})
			results[i] = result{d, err}
		}()
	}
	close(start)
	wg.Wait()
	var winners []gate.Decision
	for _, r := range results {
		switch {
		case r.err == nil:
			winners = append(winners, r.d)
		case !errors.Is(r.err, gate.ErrAlreadyDecided):
			t.Fatalf("unexpected error %v", r.err)
		}
	}
	if len(winners) != 1 {
		t.Fatalf("%d winners, want exactly 1", len(winners))
	}
	for _, r := range results {
		if r.err != nil && r.d != winners[0] {
			t.Errorf("loser saw %+v, want the winner's %+v", r.d, winners[0])
		}
	}
	_, stored, err := stores[0].Get(ctx, "race")
	if err != nil || stored == nil || *stored != winners[0] {
		t.Fatalf("stored %+v (%v), want %+v", stored, err, winners[0])
	}
}

func TestDecideRejections(t *testing.T) {
	ctx := testCtx(t)
	s := newStore(t)
	p := pending("gate", "c1", "approve", "reject")
	p.AllowedUsers = []string{"U123", "@carol"}
	if _, err := s.Register(ctx, p); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		d    gate.Decision
		want error
		msg  string
	}{
		{"not an option", gate.Decision{Choice: "maybe", ChosenBy: "carol"}, gate.ErrInvalidChoice, `the options are "approve", "reject"`},
		{"empty choice", gate.Decision{Choice: "", ChosenBy: "carol"}, gate.ErrInvalidChoice, ""},
		{"option text is not a value", gate.Decision{Choice: "APPROVE", ChosenBy: "carol"}, gate.ErrInvalidChoice, ""},
		{"user not allowed", gate.Decision{Choice: "approve", ChosenBy: "mallory", UserID: "U999"}, gate.ErrNotAllowed, "mallory"},
		{"no chooser", gate.Decision{Choice: "approve"}, gate.ErrInvalid, ""},
	}
	for _, c := range cases {
		_, _, err := s.Decide(ctx, gate.Lookup{Key: "gate"}, c.d)
		if !errors.Is(err, c.want) || !strings.Contains(fmt.Sprint(err), c.msg) {
			t.Errorf("%s: err = %v, want %v containing %q", c.name, err, c.want, c.msg)
		}
	}
	if _, d, _ := s.Get(ctx, "gate"); d != nil {
		t.Fatalf("a rejected decision was stored: %+v", d)
	}
	// Allowed by Slack user id, by username (case and '@' ignored).
	for _, d := range []gate.Decision{
		{Choice: "approve", ChosenBy: "someone", UserID: "U123"},
		{Choice: "reject", ChosenBy: "Carol"},
	} {
		q := p
		q.Key = "gate-" + d.ChosenBy
		if _, err := s.Register(ctx, q); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Decide(ctx, gate.Lookup{Key: q.Key}, d); err != nil {
			t.Errorf("%+v: %v", d, err)
		}
	}
	// A second decision keeps the first and says who made it.
	_, first, _ := s.Decide(ctx, gate.Lookup{Key: "gate"}, gate.Decision{Choice: "approve", ChosenBy: "carol"})
	_, again, err := s.Decide(ctx, gate.Lookup{Key: "gate"}, gate.Decision{Choice: "reject", ChosenBy: "U123"})
	if !errors.Is(err, gate.ErrAlreadyDecided) || again != first || !strings.Contains(err.Error(), "carol") {
		t.Fatalf("second decision: %+v %v, want the first %+v", again, err, first)
	}
}

func TestCancel(t *testing.T) {
	ctx := testCtx(t)
	s := newStore(t)
	for _, k := range []string{"a", "b"} {
		if _, err := s.Register(ctx, pending(k, "c-"+k, "ok")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Cancel(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Decide(ctx, gate.Lookup{ContextID: "c-a"}, gate.Decision{Choice: "ok", ChosenBy: "x"}); !errors.Is(err, gate.ErrCancelled) || !strings.Contains(err.Error(), "no longer waiting") {
		t.Fatalf("decide after cancel: %v", err)
	}
	p, d, err := s.Get(ctx, "a")
	if err != nil || d != nil || p.CancelledAt.IsZero() {
		t.Fatalf("Get after cancel: %+v %v %v", p, d, err)
	}
	// Cancelling a decided choice keeps the decision; unknown keys are no error.
	if _, _, err := s.Decide(ctx, gate.Lookup{Key: "b"}, gate.Decision{Choice: "ok", ChosenBy: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Cancel(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if p, d, err := s.Get(ctx, "b"); err != nil || d == nil || !p.CancelledAt.IsZero() {
		t.Fatalf("decided choice after Cancel: %+v %v %v", p, d, err)
	}
	if err := s.Cancel(ctx, "never"); err != nil {
		t.Fatalf("Cancel of an unknown key: %v", err)
	}
}

func TestTTL(t *testing.T) {
	ctx := testCtx(t)
	s := newStore(t)
	s.TTL = time.Hour
	if _, err := s.Register(ctx, pending("k", "c", "ok")); err != nil {
		t.Fatal(err)
	}
	ttl := srv.Client().PTTL(ctx, s.RecordKey("k")).Val()
	if ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("record TTL %v, want about 1h", ttl)
	}
}

func TestOnDecisionAndSubscribe(t *testing.T) {
	ctx := testCtx(t)
	stores := newStores(t, 2)
	controller, cli := stores[0], stores[1]
	got := make(chan string, 4)
	if err := controller.Subscribe(ctx, func(key string) { got <- key }); err != nil {
		t.Fatal(err)
	}
	var local []string
	controller.OnDecision = func(p gate.Gate, d gate.Decision) { local = append(local, p.Key+"="+d.Choice) }
	for _, k := range []string{"remote", "local"} {
		if _, err := controller.Register(ctx, pending(k, "c", "yes")); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := cli.Decide(ctx, gate.Lookup{Key: "remote"}, gate.Decision{Choice: "yes", ChosenBy: "x"}); err != nil {
		t.Fatal(err)
	}
	select {
	case k := <-got:
		if k != "remote" {
			t.Fatalf("subscriber got %q, want remote", k)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the subscriber was not told about a decision made through another store")
	}
	if len(local) != 0 {
		t.Fatalf("OnDecision ran for another store's decision: %v", local)
	}
	if _, _, err := controller.Decide(ctx, gate.Lookup{Key: "local"}, gate.Decision{Choice: "yes", ChosenBy: "x"}); err != nil {
		t.Fatal(err)
	}
	if len(local) != 1 || local[0] != "local=yes" {
		t.Fatalf("OnDecision calls %v", local)
	}
	// A lost race publishes nothing and does not call OnDecision again.
	_, _, _ = controller.Decide(ctx, gate.Lookup{Key: "local"}, gate.Decision{Choice: "yes", ChosenBy: "y"})
	if len(local) != 1 {
		t.Fatalf("OnDecision after a lost decision: %v", local)
	}
	select {
	case k := <-got:
		if k != "local" {
			t.Fatalf("subscriber got %q, want local", k)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no message for the local decision")
	}
	select {
	case k := <-got:
		t.Fatalf("unexpected extra message %q", k)
	case <-time.After(200 * time.Millisecond):
	}
}
