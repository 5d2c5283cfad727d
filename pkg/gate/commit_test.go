package gate_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/gate"
)

// TestCommitRacesDecideAndCancel: Commit (an ApprovalGate's outcome), Decide
// (the CLI) and Cancel (a timeout or cancellation) give exactly one outcome,
// whichever comes first, recorded once.
func TestCommitRacesDecideAndCancel(t *testing.T) {
	ctx := testCtx(t)
	s := newStore(t)
	quorum := gate.Decision{Choice: "approve", ChosenBy: "alice,bob", Via: "kubernetes", Reason: "alice: lgtm"}

	// Commit first: a later Decide and Commit get it back; Cancel changes nothing.
	if _, err := s.Register(ctx, pending("g1", "c1", "approve", "reject")); err != nil {
		t.Fatal(err)
	}
	if d, err := s.Commit(ctx, "g1", quorum); err != nil || d.ChosenBy != "alice,bob" || d.At.IsZero() {
		t.Fatalf("commit: %+v %v", d, err)
	}
	if _, d, err := s.Decide(ctx, gate.Lookup{Key: "g1"}, gate.Decision{Choice: "reject", ChosenBy: "op"}); !errors.Is(err, gate.ErrAlreadyDecided) || d.ChosenBy != "alice,bob" {
		t.Errorf("decide after commit: %+v %v", d, err)
	}
	timeout := gate.Decision{Choice: "reject", ChosenBy: "timeout", Outcome: gate.OutcomeTimedOut}
	if d, err := s.Commit(ctx, "g1", timeout); !errors.Is(err, gate.ErrAlreadyDecided) || d.Reason != "alice: lgtm" {
		t.Errorf("second commit: %+v %v", d, err)
	}
	if err := s.Cancel(ctx, "g1"); err != nil {
		t.Fatal(err)
	}
	if p, d, _ := s.Get(ctx, "g1"); !p.CancelledAt.IsZero() || d == nil || d.ChosenBy != "alice,bob" {
		t.Errorf("after cancel: %+v %+v", p, d)
	}

	// Cancel first: Commit is refused and nothing is recorded.
	if _, err := s.Register(ctx, pending("g2", "c2", "approve")); err != nil {
		t.Fatal(err)
	}
	if err := s.Cancel(ctx, "g2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(ctx, "g2", quorum); !errors.Is(err, gate.ErrCancelled) {
		t.Errorf("commit after cancel: %v", err)
	}
	if _, d, _ := s.Get(ctx, "g2"); d != nil {
		t.Errorf("a closed gate got a decision: %+v", d)
	}

	// Racing: one winner among commits, decides and a cancel.
	if _, err := s.Register(ctx, pending("g3", "c3", "approve")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := 0; i < 8; i++ {
		wg.Add(3)
		go func() {
			defer wg.Done()
			if _, err := s.Commit(ctx, "g3", quorum); err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
		go func() {
			defer wg.Done()
			if _, _, err := s.Decide(ctx, gate.Lookup{Key: "g3"}, gate.Decision{Choice: "approve", ChosenBy: "op"}); err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
		go func() { defer wg.Done(); _ = s.Cancel(ctx, "g3") }()
	}
	wg.Wait()
	p, d, _ := s.Get(ctx, "g3")
	if (d == nil) == p.CancelledAt.IsZero() || (d != nil && wins != 1) || (d == nil && wins != 0) {
		t.Errorf("racing: %d wins, decision %+v, cancelled at %v: want exactly one outcome", wins, d, p.CancelledAt)
	}
}

// TestAnswerVotesOnTheObject: with a Vote hook, a click on an open gate is a
// vote (nothing decided in Redis); a gate without an object (ErrNoObject) is
// decided at once; a decided gate answers ErrAlreadyDecided without voting.
func TestAnswerVotesOnTheObject(t *testing.T) {
	ctx := testCtx(t)
	s := newStore(t)
	var votes []gate.Decision
	s.Vote = func(_ context.Context, p gate.Gate, d gate.Decision) error {
		if p.Key == "cli-gate" {
			return gate.ErrNoObject
		}
		votes = append(votes, d)
		return nil
	}
	for _, k := range []string{"obj-gate", "cli-gate"} {
		if _, err := s.Register(ctx, pending(k, "c-"+k, "ship")); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.Answer(ctx, gate.Lookup{Key: "obj-gate"}, gate.Decision{Choice: "ship", ChosenBy: "alice", UserID: "U0ALICE01", Via: gate.ViaSlack}); err != nil {
		t.Fatal(err)
	}
	if len(votes) != 1 || votes[0].ChosenBy != "U0ALICE01" || votes[0].At.IsZero() {
		t.Errorf("votes %+v", votes)
	}
	if _, d, _ := s.Get(ctx, "obj-gate"); d != nil {
		t.Errorf("a vote decided the gate in Redis: %+v", d)
	}
	if _, d, err := s.Answer(ctx, gate.Lookup{Key: "cli-gate"}, gate.Decision{Choice: "ship", UserID: "U0BOB0001", Via: gate.ViaSlack}); err != nil || d.ChosenBy != "U0BOB0001" {
		t.Errorf("answer of a gate without an object: %+v %v", d, err)
	}
	if _, d, _ := s.Get(ctx, "cli-gate"); d == nil {
		t.Errorf("a gate without an object was not decided")
	}
	if _, err := s.Commit(ctx, "obj-gate", gate.Decision{Choice: "ship", ChosenBy: "U0ALICE01,bob"}); err != nil {
		t.Fatal(err)
	}
	if _, d, err := s.Answer(ctx, gate.Lookup{Key: "obj-gate"}, gate.Decision{Choice: "ship", UserID: "U0CAROL01", Via: gate.ViaSlack}); !errors.Is(err, gate.ErrAlreadyDecided) || d.ChosenBy != "U0ALICE01,bob" || len(votes) != 1 {
		t.Errorf("answer after the outcome: %+v %v (votes %d)", d, err, len(votes))
	}
}
