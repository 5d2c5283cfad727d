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
	if first.CreatedAt.IsZero() {
		t.Fatalf("Register did not fill createdAt: %+v", first)
	}
	again := pending("run-1", "c1", "other")
	again.Title = "changed"
	second, err := s.Register(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	if second.Title != "Deploy?" || len(second.Options) != 2 || !second.CreatedAt.Equal(first.CreatedAt) {
		t.Fatalf("second Register = %+v, want the first %+v", second, first)
	}
	got, d, err := s.Get(ctx, "run-1")
	if err != nil || d != nil || !got.CreatedAt.Equal(first.CreatedAt) {
		t.Fatalf("Get = %+v %v %v", got, d, err)
	}
	// Gates have no bearer token any more (the /gates/<token> route is gone): no
	// token index is written.
	prefix := strings.TrimSuffix(s.RecordKey(""), ":gate:")
	if keys := srv.Client().Keys(ctx, prefix+":gate-by-token:*").Val(); len(keys) != 0 {
		t.Fatalf("token index keys %v, want none", keys)
	}
	bad := []gate.Gate{
		{Key: "", Options: []gate.Option{{Value: "a"}}},
		{Key: "k"},
		{Key: "k", Options: []gate.Option{{Value: ""}}},
		{Key: "k", Options: []gate.Option{{Value: "a"}, {Value: "a"}}},
		{Key: strings.Repeat("k", gate.MaxKeyLen+1), Options: []gate.Option{{Value: "a"}}},
		// allowed-users holds Slack user ids only.
		{Key: "k", Options: []gate.Option{{Value: "a"}}, AllowedUsers: []string{"alice"}},
		{Key: "k", Options: []gate.Option{{Value: "a"}}, AllowedUsers: []string{"U024BE7LH", "@U024BE7LH"}},
		{Key: "k", Options: []gate.Option{{Value: "a"}}, AllowedUsers: []string{"u024be7lh"}},
		{Key: "k", Options: []gate.Option{{Value: "a"}}, AllowedUsers: []string{""}},
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
	for _, l := range []gate.Lookup{{Key: "nope"}, {ContextID: "nope"}, {SlackChannel: "C1", SlackTS: "1.2"}} {
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

func TestValidUserID(t *testing.T) {
	for _, id := range []string{"U024BE7LH", "W012A3CDE", "U1", "UALLOWED1"} {
		if !gate.ValidUserID(id) {
			t.Errorf("%q is a Slack user id", id)
		}
	}
	for _, id := range []string{"", "U", "alice", "@U024BE7LH", "u024be7lh", "U024BE7LH ", "C024BE7LH", "B024BE7LH", "U-1", "Ualice", strings.Repeat("U", 33)} {
		if gate.ValidUserID(id) {
			t.Errorf("%q is not a Slack user id", id)
		}
	}
	p := gate.Gate{AllowedUsers: []string{"U024BE7LH"}}
	if !p.Allows("U024BE7LH") || p.Allows("u024be7lh") || p.Allows("@U024BE7LH") || p.Allows("alice") || p.Allows("") {
		t.Fatal("Allows matches the exact user id only")
	}
	if !(gate.Gate{}).Allows("anyone") {
		t.Fatal("no allow-list: anyone")
	}
}

func TestDecideRejections(t *testing.T) {
	ctx := testCtx(t)
	s := newStore(t)
	p := pending("gate", "c1", "approve", "reject")
	p.AllowedUsers = []string{"U123", "W456"}
	if _, err := s.Register(ctx, p); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		d    gate.Decision
		want error
		msg  string
	}{
		{"not an option", gate.Decision{Choice: "maybe", UserID: "U123"}, gate.ErrInvalidChoice, `the options are "approve", "reject"`},
		{"empty choice", gate.Decision{Choice: "", UserID: "U123"}, gate.ErrInvalidChoice, ""},
		{"option text is not a value", gate.Decision{Choice: "APPROVE", UserID: "U123"}, gate.ErrInvalidChoice, ""},
		{"user not allowed", gate.Decision{Choice: "approve", ChosenBy: "mallory", UserID: "U999"}, gate.ErrNotAllowed, "U999"},
		// A username never authorizes, not even one that equals an allowed id.
		{"username of an allowed id", gate.Decision{Choice: "approve", UserID: "U999", UserName: "U123"}, gate.ErrNotAllowed, "U999"},
		{"name as ChosenBy", gate.Decision{Choice: "approve", ChosenBy: "carol"}, gate.ErrNotAllowed, "carol"},
		{"id in other case", gate.Decision{Choice: "approve", ChosenBy: "u123"}, gate.ErrNotAllowed, "u123"},
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
	// Allowed by Slack user id (a Slack click), or by an id given as ChosenBy (the CLI's
	// unverified --by). The decision records the id as ChosenBy, the name for display.
	for i, c := range []struct {
		d    gate.Decision
		want gate.Decision
	}{
		{gate.Decision{Choice: "approve", ChosenBy: "someone", UserID: "U123", Via: gate.ViaSlack},
			gate.Decision{Choice: "approve", ChosenBy: "U123", UserID: "U123", UserName: "someone", Via: gate.ViaSlack}},
		{gate.Decision{Choice: "approve", ChosenBy: "U123", UserID: "U123", UserName: "alice", Via: gate.ViaSlack},
			gate.Decision{Choice: "approve", ChosenBy: "U123", UserID: "U123", UserName: "alice", Via: gate.ViaSlack}},
		{gate.Decision{Choice: "reject", ChosenBy: "W456"},
			gate.Decision{Choice: "reject", ChosenBy: "W456", Via: gate.ViaCLI}},
	} {
		q := p
		q.Key = fmt.Sprintf("gate-%d", i)
		if _, err := s.Register(ctx, q); err != nil {
			t.Fatal(err)
		}
		_, got, err := s.Decide(ctx, gate.Lookup{Key: q.Key}, c.d)
		if err != nil {
			t.Fatalf("%+v: %v", c.d, err)
		}
		_, stored, _ := s.Get(ctx, q.Key)
		got.At, c.want.At = time.Time{}, time.Time{}
		if got != c.want || stored == nil || stored.ChosenBy != c.want.ChosenBy || stored.UserID != c.want.UserID || stored.UserName != c.want.UserName {
			t.Errorf("%+v: decided %+v, stored %+v, want %+v", c.d, got, stored, c.want)
		}
	}
	// A second decision keeps the first and says who made it.
	_, first, _ := s.Decide(ctx, gate.Lookup{Key: "gate"}, gate.Decision{Choice: "approve", UserID: "W456", UserName: "carol"})
	_, again, err := s.Decide(ctx, gate.Lookup{Key: "gate"}, gate.Decision{Choice: "reject", UserID: "U123"})
	if !errors.Is(err, gate.ErrAlreadyDecided) || again != first || !strings.Contains(err.Error(), "W456") {
		t.Fatalf("second decision: %+v %v, want the first %+v", again, err, first)
	}
}

// TestMarkOnce: the first mark of a name wins until it expires; Redis down is an
// error, never a "first".
func TestMarkOnce(t *testing.T) {
	ctx := testCtx(t)
	stores := newStores(t, 2)
	if first, err := stores[0].MarkOnce(ctx, "slack:abc", time.Minute); err != nil || !first {
		t.Fatalf("first mark: %v %v", first, err)
	}
	for _, s := range stores {
		if first, err := s.MarkOnce(ctx, "slack:abc", time.Minute); err != nil || first {
			t.Fatalf("second mark: %v %v", first, err)
		}
	}
	if ttl := srv.Client().PTTL(ctx, stores[0].OnceKey("slack:abc")).Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("mark ttl %s", ttl)
	}
	if first, err := stores[1].MarkOnce(ctx, "slack:def", 50*time.Millisecond); err != nil || !first {
		t.Fatalf("other name: %v %v", first, err)
	}
	time.Sleep(120 * time.Millisecond)
	if first, err := stores[1].MarkOnce(ctx, "slack:def", time.Minute); err != nil || !first {
		t.Fatalf("after expiry: %v %v", first, err)
	}
	for _, bad := range []struct {
		name string
		ttl  time.Duration
	}{{"", time.Minute}, {"x", 0}, {strings.Repeat("x", gate.MaxKeyLen+1), time.Minute}} {
		if _, err := stores[0].MarkOnce(ctx, bad.name, bad.ttl); !errors.Is(err, gate.ErrInvalid) {
			t.Errorf("MarkOnce(%d bytes, %s): %v, want ErrInvalid", len(bad.name), bad.ttl, err)
		}
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
