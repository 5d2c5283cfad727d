// Package gate keeps approval gates in Redis: what a waiting run asks, who may decide,
// and the one decision that wins.
//
// A waiter (a CustomRun of a manual-choice handler with wait: true, or a CLI journal
// key) registers a Gate under its Key: what is asked, the options, who may answer and,
// once the question is posted to Slack, the channel and ts of that message. Anyone who
// answers (a Slack button click, `cicdstatemgr decide`) calls Decide; exactly one decision is ever recorded per Key, later ones
// get ErrAlreadyDecided together with the first decision. A waiter that gives up (the
// CustomRun was cancelled or timed out) calls Cancel, after which decisions get
// ErrCancelled ("no longer waiting").
//
// Keys (prefix = the store's key prefix; everything expires after Store.TTL):
//
//	<prefix>:gate:<key>                        hash: pending (JSON), slackChannel,
//	                                           slackTS, decision (JSON), cancelledAt
//	<prefix>:gate-by-slack:<channel>:<ts>      -> key of the gate posted as that message
//	<prefix>:gate-by-context:<contextID>       -> key of the latest gate registered for
//	                                           that cicd context
//	<prefix>:gate-decided                      pub/sub channel: the key of every decision
//
// Decide, Commit and Cancel are single Lua scripts on the gate's record, so they are
// atomic. Every script names only the record (one key, one hash slot), so the gates
// work on a Redis Cluster: Register and AttachSlackMessage write the record in a script
// and then the indexes (in other slots) with commands of their own. An index is
// written after its record and only points at a gate key, so a lookup through it finds
// the gate or nothing (ErrNotFound, for the moment between), never a wrong gate; a
// repeated Register repairs an index it failed to write. On a Cluster the decision is
// published with PUBLISH (cluster-wide, whichever node Subscribe is connected to).
//
// Gates of the controller also have a Kubernetes object (an ApprovalGate, see
// pkg/apis/cicdstatemgr/v1alpha1) where approvers vote: Answer (a Slack click)
// records a vote there through Store.Vote, and the controller Commits what the
// votes add up to. Redis stays the one place where the winning outcome is
// decided: Decide, Commit and Cancel are the same atomic script, so a quorum, a
// CLI decision, a timeout and a cancellation racing each other give exactly one
// outcome.
//
// Waking the waiter: Store.OnDecision is called after a successful Decide made through
// that Store value (same process); every decision is also published on
// <prefix>:gate-decided, which Subscribe delivers, so a decision made by the CLI or by
// another replica wakes the controller too. Pub/sub is fire-and-forget: a subscriber
// that was disconnected when a decision was published misses it, so waiters should also
// poll Get now and then.
//
// The allow-list (Gate.AllowedUsers) holds Slack user ids only (U… or W…, see
// ValidUserID; Register refuses anything else): usernames and display names can be
// changed by their owner and are never used for authorization. It is checked against
// Decision.UserID, else Decision.ChosenBy: authoritative for Slack clicks (whose user id
// Slack signs) and advisory for the CLI, whose --by is whatever the operator typed.
package gate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

// DefaultTTL is how long gates, their decisions and their indexes are kept.
const DefaultTTL = 7 * 24 * time.Hour

// MaxKeyLen is the longest Key accepted, in bytes.
const MaxKeyLen = 1024

// Via values of a Decision.
const (
	ViaSlack = "slack"
	ViaCLI   = "cli"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrNotFound: no such gate (never registered, expired, or nothing
	// pending for that context or Slack message).
	ErrNotFound = errors.New("no gate")
	// ErrAlreadyDecided: someone decided first; Decide returns that first decision.
	ErrAlreadyDecided = errors.New("already decided")
	// ErrInvalidChoice: the choice is not one of the options (see *InvalidChoiceError).
	ErrInvalidChoice = errors.New("invalid choice")
	// ErrNotAllowed: the user is not in the allow-list.
	ErrNotAllowed = errors.New("not allowed to decide this gate")
	// ErrCancelled: the waiter gave up (cancelled or timed out); nobody waits any more.
	ErrCancelled = errors.New("no longer waiting: the gate was closed")
	// ErrInvalid: a malformed Gate, Lookup or Decision (empty key, no options, no
	// ChosenBy, ...).
	ErrInvalid = errors.New("invalid request")
	// ErrNoObject: Store.Vote found no Kubernetes object for the gate (a gate
	// the CLI waits at); Answer then decides in Redis.
	ErrNoObject = errors.New("no approval gate object")
	// ErrNotOpen: the gate's Kubernetes object is being created; the caller
	// may try again in a moment.
	ErrNotOpen = errors.New("the approval gate is being opened, try again in a moment")
)

// InvalidChoiceError is returned for a choice that is not among the options.
type InvalidChoiceError struct {
	Choice  string
	Options []Option
}

func (e *InvalidChoiceError) Error() string {
	vals := make([]string, len(e.Options))
	for i, o := range e.Options {
		vals[i] = fmt.Sprintf("%q", o.Value)
	}
	return fmt.Sprintf("invalid choice %q: the options are %s", e.Choice, strings.Join(vals, ", "))
}

// Is makes errors.Is(err, ErrInvalidChoice) true.
func (e *InvalidChoiceError) Is(target error) bool { return target == ErrInvalidChoice }

// Option is one answer of a gate.
type Option struct {
	Value string `json:"value"`
	Text  string `json:"text,omitempty"`
}

// Gate is an approval gate someone waits at.
type Gate struct {
	// Key identifies the waiter: the CustomRun UID or the CLI journal key.
	Key       string `json:"key"`
	ContextID string `json:"contextId,omitempty"`
	Pipeline  string `json:"pipeline,omitempty"`
	Event     string `json:"event,omitempty"`
	Title     string `json:"title,omitempty"`
	// Options are the accepted answers (at least one).
	Options []Option `json:"options"`
	// AllowedUsers are Slack user ids (ValidUserID); empty = anyone.
	AllowedUsers []string `json:"allowedUsers,omitempty"`
	// SlackChannel and SlackTS name the posted Slack message, when known.
	SlackChannel string    `json:"slackChannel,omitempty"`
	SlackTS      string    `json:"slackTs,omitempty"`
	CreatedAt    time.Time `json:"createdAt"`
	// CancelledAt is set (by Get) once Cancel was called.
	CancelledAt time.Time `json:"cancelledAt,omitzero"`
}

// HasOption reports whether v is one of the option values.
func (p Gate) HasOption(v string) bool {
	for _, o := range p.Options {
		if o.Value == v {
			return true
		}
	}
	return false
}

// ValidUserID reports whether s looks like a Slack user id: U or W (Enterprise Grid)
// followed by upper-case letters and digits, e.g. U024BE7LH. Usernames, display names
// and '@' mentions are not ids.
func ValidUserID(s string) bool {
	if len(s) < 2 || len(s) > 32 || (s[0] != 'U' && s[0] != 'W') {
		return false
	}
	for _, c := range s[1:] {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// CheckAllowedUsers returns an ErrInvalid error naming the first entry of an allow-list
// that is not a Slack user id (ValidUserID).
func CheckAllowedUsers(users []string) error {
	for _, u := range users {
		if !ValidUserID(u) {
			return fmt.Errorf("%w: allowed-users entry %q is not a Slack user id (like U024BE7LH or W012A3CDE): "+
				"only user ids are accepted, usernames can be changed by their owner", ErrInvalid, u)
		}
	}
	return nil
}

// Allows reports whether the Slack user id may decide (always true without an
// allow-list). The comparison is exact: only an id equal to an entry matches, a
// username never does.
func (p Gate) Allows(userID string) bool {
	if len(p.AllowedUsers) == 0 {
		return true
	}
	if !ValidUserID(userID) {
		return false
	}
	for _, a := range p.AllowedUsers {
		if a == userID {
			return true
		}
	}
	return false
}

// Decision is the answer to a gate.
type Decision struct {
	Choice string `json:"choice"`
	// ChosenBy is who decided: the Slack user id of a Slack decision (equal to UserID),
	// the unverified --by of the CLI.
	ChosenBy string `json:"chosenBy"`
	// UserID is the verified Slack user id of a Slack decision; Decide sets ChosenBy to
	// it.
	UserID string `json:"userId,omitempty"`
	// UserName is the Slack username of a Slack decision, for display only: it never
	// authorizes anything.
	UserName string    `json:"userName,omitempty"`
	Via      string    `json:"via"` // slack, cli, kubernetes or timeout
	At       time.Time `json:"at"`
	// Outcome is empty for a choice, OutcomeRejected for a rejection and
	// OutcomeTimedOut for the on-timeout option (Commit).
	Outcome string `json:"outcome,omitempty"`
	// Reason is the deciders' comment or reason (Commit).
	Reason string `json:"reason,omitempty"`
}

// Outcomes of a committed Decision besides a plain choice.
const (
	OutcomeRejected = "Rejected"
	OutcomeTimedOut = "TimedOut"
)

// More Via values: decisions committed by the controller for an ApprovalGate.
const (
	ViaKubernetes = "kubernetes"
	ViaTimeout    = "timeout"
)

// Lookup names a gate: by Key, else by SlackChannel+SlackTS, else by ContextID (the
// latest gate registered for that context).
type Lookup struct {
	Key          string
	ContextID    string
	SlackChannel string
	SlackTS      string
}

// String describes the lookup for messages.
func (l Lookup) String() string {
	switch {
	case l.Key != "":
		return fmt.Sprintf("key %q", l.Key)
	case l.SlackChannel != "" || l.SlackTS != "":
		return fmt.Sprintf("Slack message %s/%s", l.SlackChannel, l.SlackTS)
	case l.ContextID != "":
		return fmt.Sprintf("cicd context %q", l.ContextID)
	}
	return "an empty lookup"
}

// Store keeps gates in the Redis of a *store.Store. Set the exported fields
// before use; the Store is then safe for concurrent use.
type Store struct {
	// OnDecision, when set, is called after every successful Decide made through this
	// Store (synchronously, in the caller's goroutine).
	OnDecision func(p Gate, d Decision)
	// Vote, when set, records an answer given through Answer (a Slack click) on the
	// gate's Kubernetes object instead of deciding at once, so that the object's
	// quorum rules decide. It returns ErrNoObject for a gate without an object,
	// ErrNotAllowed or an *InvalidChoiceError to refuse the vote.
	Vote func(ctx context.Context, p Gate, d Decision) error
	// TTL of the records; DefaultTTL when <= 0.
	TTL time.Duration
	// Clock defaults to time.Now.
	Clock func() time.Time

	rdb    redis.UniversalClient
	prefix string
	addr   string
}

// New makes a Store over st's Redis client and key prefix.
func New(st *store.Store) *Store {
	return &Store{
		rdb:    st.Client(),
		prefix: keyPrefix(st),
		addr:   st.Addr(),
	}
}

// keyPrefix recovers the store's key prefix from its key pattern
// (<prefix>:<kind>:<id>, e.g. <prefix>:ctx:<id>).
func keyPrefix(st *store.Store) string {
	k := strings.TrimSuffix(st.OpKey(""), ":")
	if i := strings.LastIndex(k, ":"); i > 0 {
		return k[:i]
	}
	return store.DefaultKeyPrefix
}

func (s *Store) now() time.Time {
	if s.Clock != nil {
		return s.Clock()
	}
	return time.Now()
}

func (s *Store) ttl() time.Duration {
	if s.TTL > 0 {
		return s.TTL
	}
	return DefaultTTL
}

// Key names of the store (exported for tests and tools).

// RecordKey is the Redis key of the gate key.
func (s *Store) RecordKey(key string) string { return s.prefix + ":gate:" + key }

func (s *Store) slackIndex(channel, ts string) string {
	return s.prefix + ":gate-by-slack:" + channel + ":" + ts
}
func (s *Store) contextIndex(id string) string { return s.prefix + ":gate-by-context:" + id }

// Channel is the pub/sub channel decisions are published on.
func (s *Store) Channel() string { return s.prefix + ":gate-decided" }

func checkKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty gate key", ErrInvalid)
	}
	if len(key) > MaxKeyLen {
		return fmt.Errorf("%w: gate key longer than %d bytes", ErrInvalid, MaxKeyLen)
	}
	return nil
}

// registerScript creates the record unless it exists. It touches the record only
// (one hash slot, so it runs on a Redis Cluster too); Register writes the indexes
// afterwards, each with a command of its own.
// KEYS: record. ARGV: pending JSON, ttl ms, slack channel, slack ts.
var registerScript = store.LazyScript(`
if redis.call('HSETNX', KEYS[1], 'pending', ARGV[1]) == 0 then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if ARGV[3] ~= '' and ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'slackChannel', ARGV[3], 'slackTS', ARGV[4])
end
return 1
`)

// Register records p unless a gate with p.Key exists already, in which case it
// returns that one unchanged (same options). It fills CreatedAt when empty and points
// the context's index at p.Key. AllowedUsers must be Slack user ids (ErrInvalid
// otherwise, see CheckAllowedUsers).
func (s *Store) Register(ctx context.Context, p Gate) (Gate, error) {
	if err := checkKey(p.Key); err != nil {
		return Gate{}, err
	}
	if len(p.Options) == 0 {
		return Gate{}, fmt.Errorf("%w: gate %q has no options", ErrInvalid, p.Key)
	}
	seen := map[string]bool{}
	for _, o := range p.Options {
		if o.Value == "" {
			return Gate{}, fmt.Errorf("%w: gate %q has an option with an empty value", ErrInvalid, p.Key)
		}
		if seen[o.Value] {
			return Gate{}, fmt.Errorf("%w: gate %q has the option %q twice", ErrInvalid, p.Key, o.Value)
		}
		seen[o.Value] = true
	}
	if err := CheckAllowedUsers(p.AllowedUsers); err != nil {
		return Gate{}, fmt.Errorf("gate %q: %w", p.Key, err)
	}
	if p.CreatedAt.IsZero() {
		p.CreatedAt = s.now().UTC()
	}
	p.CancelledAt = time.Time{}
	slackCh, slackTS := p.SlackChannel, p.SlackTS
	if slackCh == "" || slackTS == "" {
		slackCh, slackTS = "", ""
	}
	rec := p
	rec.SlackChannel, rec.SlackTS = "", "" // kept in their own hash fields
	b, err := json.Marshal(rec)
	if err != nil {
		return Gate{}, fmt.Errorf("gate: encoding %q: %w", p.Key, err)
	}
	k := s.RecordKey(p.Key)
	created, err := registerScript().Run(ctx, s.rdb, []string{k},
		string(b), s.ttl().Milliseconds(), slackCh, slackTS).Int()
	if err != nil {
		return Gate{}, s.wrap(err, "REGISTER", k)
	}
	if created == 1 {
		p.SlackChannel, p.SlackTS = slackCh, slackTS
		return p, s.index(ctx, p, false)
	}
	existing, _, err := s.Get(ctx, p.Key)
	if err != nil {
		return existing, err
	}
	// A Register that failed between the record and its indexes is repaired by its
	// retry; an index that already points elsewhere (a newer gate) is kept.
	return existing, s.index(ctx, existing, true)
}

// index points the context index and the Slack index of p at p.Key: separate
// single-key SETs after the record is written (the indexes and the record are in
// different hash slots of a Cluster). Until they are written a lookup by context or
// Slack message finds nothing (ErrNotFound), never a wrong gate; onlyMissing (SET NX)
// repairs missing indexes without moving one that points at a newer gate.
func (s *Store) index(ctx context.Context, p Gate, onlyMissing bool) error {
	set := func(idx string) error {
		var err error
		if onlyMissing {
			err = s.rdb.SetNX(ctx, idx, p.Key, s.ttl()).Err()
		} else {
			err = s.rdb.Set(ctx, idx, p.Key, s.ttl()).Err()
		}
		return s.wrap(err, "SET", idx)
	}
	if p.ContextID != "" {
		if err := set(s.contextIndex(p.ContextID)); err != nil {
			return err
		}
	}
	if p.SlackChannel != "" && p.SlackTS != "" {
		return set(s.slackIndex(p.SlackChannel, p.SlackTS))
	}
	return nil
}

// attachScript records the Slack message of a gate on its record (the record only:
// one hash slot); AttachSlackMessage moves the index afterwards.
// KEYS: record. ARGV: channel, ts, default ttl ms.
// Returns {0} when there is no record, else {1, old channel, old ts, ttl ms}.
var attachScript = store.LazyScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {0}
end
local oc = redis.call('HGET', KEYS[1], 'slackChannel') or ''
local ot = redis.call('HGET', KEYS[1], 'slackTS') or ''
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then
  ttl = tonumber(ARGV[3])
end
redis.call('HSET', KEYS[1], 'slackChannel', ARGV[1], 'slackTS', ARGV[2])
return {1, oc, ot, ttl}
`)

// dropIndexScript deletes an index that still points at the gate. KEYS: index.
// ARGV: gate key.
var dropIndexScript = store.LazyScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// AttachSlackMessage records that the gate key was posted as the Slack message
// channel/ts, so a click on it finds the gate. A previous message's index is dropped.
func (s *Store) AttachSlackMessage(ctx context.Context, key, channel, ts string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if channel == "" || ts == "" {
		return fmt.Errorf("%w: a Slack message needs a channel and a ts", ErrInvalid)
	}
	k := s.RecordKey(key)
	res, err := attachScript().Run(ctx, s.rdb, []string{k}, channel, ts, s.ttl().Milliseconds()).Slice()
	if err != nil {
		return s.wrap(err, "ATTACH", k)
	}
	if n, _ := res[0].(int64); n == 0 || len(res) < 4 {
		return fmt.Errorf("%w for key %q", ErrNotFound, key)
	}
	oldCh, _ := res[1].(string)
	oldTS, _ := res[2].(string)
	ttl, _ := res[3].(int64)
	// The indexes live in other hash slots than the record: the new one is set, then
	// the old one dropped if it still names this gate (two single-key commands).
	idx := s.slackIndex(channel, ts)
	if err := s.rdb.Set(ctx, idx, key, time.Duration(max(ttl, 1))*time.Millisecond).Err(); err != nil {
		return s.wrap(err, "SET", idx)
	}
	if oldCh != "" && oldTS != "" {
		if old := s.slackIndex(oldCh, oldTS); old != idx {
			if err := dropIndexScript().Run(ctx, s.rdb, []string{old}, key).Err(); err != nil {
				return s.wrap(err, "DROP INDEX", old)
			}
		}
	}
	return nil
}

// Get returns the gate key and its decision (nil while undecided). A cancelled
// gate has CancelledAt set.
func (s *Store) Get(ctx context.Context, key string) (Gate, *Decision, error) {
	if err := checkKey(key); err != nil {
		return Gate{}, nil, err
	}
	k := s.RecordKey(key)
	h, err := s.rdb.HGetAll(ctx, k).Result()
	if err != nil {
		return Gate{}, nil, s.wrap(err, "HGETALL", k)
	}
	return parseRecord(key, h)
}

func parseRecord(key string, h map[string]string) (Gate, *Decision, error) {
	raw, ok := h["pending"]
	if !ok {
		return Gate{}, nil, fmt.Errorf("%w for key %q", ErrNotFound, key)
	}
	var p Gate
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		return Gate{}, nil, fmt.Errorf("gate: malformed record of %q: %w", key, err)
	}
	p.SlackChannel, p.SlackTS = h["slackChannel"], h["slackTS"]
	if c := h["cancelledAt"]; c != "" {
		p.CancelledAt, _ = time.Parse(time.RFC3339Nano, c)
	}
	var d *Decision
	if raw, ok := h["decision"]; ok {
		d = new(Decision)
		if err := json.Unmarshal([]byte(raw), d); err != nil {
			return Gate{}, nil, fmt.Errorf("gate: malformed decision of %q: %w", key, err)
		}
	}
	return p, d, nil
}

// resolve finds the key a lookup names.
func (s *Store) resolve(ctx context.Context, l Lookup) (string, error) {
	var idx string
	switch {
	case l.Key != "":
		return l.Key, checkKey(l.Key)
	case l.SlackChannel != "" && l.SlackTS != "":
		idx = s.slackIndex(l.SlackChannel, l.SlackTS)
	case l.ContextID != "":
		idx = s.contextIndex(l.ContextID)
	default:
		return "", fmt.Errorf("%w: a lookup needs a key, a Slack channel and ts, or a context id", ErrInvalid)
	}
	key, err := s.rdb.Get(ctx, idx).Result()
	if errors.Is(err, redis.Nil) || (err == nil && key == "") {
		return "", fmt.Errorf("%w for %s", ErrNotFound, l)
	}
	if err != nil {
		return "", s.wrap(err, "GET", idx)
	}
	return key, nil
}

// decideScript records the first decision and publishes the key.
// KEYS: record. ARGV: decision JSON, channel, key.
// Returns {status, payload}: 0 not found, 1 already decided (first decision),
// 2 cancelled (cancelledAt), 3 decided now.
var decideScript = store.LazyScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {0, ''}
end
local c = redis.call('HGET', KEYS[1], 'cancelledAt')
if c then
  return {2, c}
end
local d = redis.call('HGET', KEYS[1], 'decision')
if d then
  return {1, d}
end
redis.call('HSET', KEYS[1], 'decision', ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return {3, ARGV[1]}
`)

// Decide records d as the answer to the gate l names. Exactly one decision wins:
// after the first, Decide returns that first decision with ErrAlreadyDecided and
// changes nothing. Errors: ErrNotFound, ErrCancelled, ErrInvalidChoice (an
// *InvalidChoiceError), ErrNotAllowed, ErrInvalid (no ChosenBy, bad lookup).
// d.At defaults to now, d.Via to "cli". With a UserID, ChosenBy becomes the UserID (a
// different ChosenBy is kept as UserName when that is empty) and the allow-list is
// checked against it; without, against ChosenBy.
func (s *Store) Decide(ctx context.Context, l Lookup, d Decision) (Gate, Decision, error) {
	if strings.TrimSpace(d.ChosenBy) == "" && d.UserID == "" {
		return Gate{}, Decision{}, fmt.Errorf("%w: a decision needs a ChosenBy", ErrInvalid)
	}
	if d.UserID != "" && d.ChosenBy != d.UserID {
		if d.UserName == "" {
			d.UserName = d.ChosenBy
		}
		d.ChosenBy = d.UserID
	}
	if d.Via == "" {
		d.Via = ViaCLI
	}
	if d.At.IsZero() {
		d.At = s.now().UTC()
	}
	key, p, first, err := s.waiting(ctx, l)
	if err != nil {
		return p, first, err
	}
	if !p.HasOption(d.Choice) {
		return p, Decision{}, &InvalidChoiceError{Choice: d.Choice, Options: p.Options}
	}
	if !p.Allows(d.ChosenBy) {
		return p, Decision{}, fmt.Errorf("%w: %s is not among the users allowed to answer %q", ErrNotAllowed, d.ChosenBy, titleOf(p))
	}
	b, err := json.Marshal(d)
	if err != nil {
		return p, Decision{}, fmt.Errorf("gate: encoding the decision: %w", err)
	}
	k := s.RecordKey(key)
	res, err := decideScript().Run(ctx, s.rdb, []string{k}, string(b), s.Channel(), key).Slice()
	if err != nil {
		return p, Decision{}, s.wrap(err, "DECIDE", k)
	}
	status, _ := res[0].(int64)
	payload, _ := res[1].(string)
	switch status {
	case 0:
		return p, Decision{}, fmt.Errorf("%w for key %q (it expired)", ErrNotFound, key)
	case 1:
		var prev Decision
		if err := json.Unmarshal([]byte(payload), &prev); err != nil {
			return p, Decision{}, fmt.Errorf("gate: malformed decision of %q: %w", key, err)
		}
		return p, prev, alreadyDecided(prev)
	case 2:
		return p, Decision{}, fmt.Errorf("%w (key %q, cancelled at %s)", ErrCancelled, key, payload)
	}
	if s.OnDecision != nil {
		s.OnDecision(p, d)
	}
	return p, d, nil
}

// waiting resolves l to a gate that still waits for a decision: a closed gate
// is ErrCancelled, a decided one ErrAlreadyDecided with its first decision.
func (s *Store) waiting(ctx context.Context, l Lookup) (string, Gate, Decision, error) {
	key, err := s.resolve(ctx, l)
	if err != nil {
		return "", Gate{}, Decision{}, err
	}
	p, first, err := s.Get(ctx, key)
	if err != nil {
		return "", Gate{}, Decision{}, err
	}
	if !p.CancelledAt.IsZero() {
		return key, p, Decision{}, fmt.Errorf("%w (key %q, cancelled at %s)", ErrCancelled, key, p.CancelledAt.Format(time.RFC3339))
	}
	if first != nil {
		return key, p, *first, alreadyDecided(*first)
	}
	return key, p, Decision{}, nil
}

// Answer is how a Slack click answers a gate: a gate that is decided or
// closed answers as Decide does (ErrAlreadyDecided with the first decision,
// ErrCancelled); otherwise the answer is a vote on the gate's Kubernetes object
// (Store.Vote), and only a gate without one (ErrNoObject) is decided at once.
// A recorded vote returns the gate, d and no error.
func (s *Store) Answer(ctx context.Context, l Lookup, d Decision) (Gate, Decision, error) {
	if s.Vote == nil {
		return s.Decide(ctx, l, d)
	}
	key, p, first, err := s.waiting(ctx, l)
	if err != nil {
		return p, first, err
	}
	if d.UserID != "" {
		d.ChosenBy = d.UserID
	}
	if d.At.IsZero() {
		d.At = s.now().UTC()
	}
	if err := s.Vote(ctx, p, d); !errors.Is(err, ErrNoObject) {
		return p, d, err
	}
	return s.Decide(ctx, Lookup{Key: key}, d)
}

// Commit records d as the outcome of the gate key, as Decide does but without
// checking the option or the allow-list: the controller commits what the
// gate's object decided (a quorum, a rejection, the on-timeout option), whose
// deciders were checked when they decided. Exactly one decision wins: a gate
// decided before returns that first decision with ErrAlreadyDecided, a closed
// gate ErrCancelled.
func (s *Store) Commit(ctx context.Context, key string, d Decision) (Decision, error) {
	if err := checkKey(key); err != nil {
		return Decision{}, err
	}
	if d.At.IsZero() {
		d.At = s.now().UTC()
	}
	b, err := json.Marshal(d)
	if err != nil {
		return Decision{}, fmt.Errorf("gate: encoding the decision: %w", err)
	}
	k := s.RecordKey(key)
	res, err := decideScript().Run(ctx, s.rdb, []string{k}, string(b), s.Channel(), key).Slice()
	if err != nil {
		return Decision{}, s.wrap(err, "DECIDE", k)
	}
	status, _ := res[0].(int64)
	payload, _ := res[1].(string)
	switch status {
	case 0:
		return Decision{}, fmt.Errorf("%w for key %q", ErrNotFound, key)
	case 1:
		var prev Decision
		if err := json.Unmarshal([]byte(payload), &prev); err != nil {
			return Decision{}, fmt.Errorf("gate: malformed decision of %q: %w", key, err)
		}
		return prev, alreadyDecided(prev)
	case 2:
		return Decision{}, fmt.Errorf("%w (key %q, cancelled at %s)", ErrCancelled, key, payload)
	}
	return d, nil
}

func titleOf(p Gate) string {
	if p.Title != "" {
		return p.Title
	}
	return p.Key
}

func alreadyDecided(d Decision) error {
	return fmt.Errorf("%w by %s: choice %q via %s at %s", ErrAlreadyDecided, d.ChosenBy, d.Choice, d.Via, d.At.Format(time.RFC3339))
}

// cancelScript marks an undecided record cancelled. KEYS: record. ARGV: time.
var cancelScript = store.LazyScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if redis.call('HEXISTS', KEYS[1], 'decision') == 1 then
  return 1
end
redis.call('HSETNX', KEYS[1], 'cancelledAt', ARGV[1])
return 2
`)

// Cancel says nobody waits for the gate key any more (its CustomRun was cancelled or
// timed out): later decisions get ErrCancelled. Cancelling an unknown, decided or
// already closed gate does nothing.
func (s *Store) Cancel(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	k := s.RecordKey(key)
	err := cancelScript().Run(ctx, s.rdb, []string{k}, s.now().UTC().Format(time.RFC3339Nano)).Err()
	return s.wrap(err, "CANCEL", k)
}

// Subscribe delivers the key of every decision published on Channel (by any process)
// to fn, in order, from a goroutine of its own, until ctx ends. It returns once the
// subscription is active (so a decision made after it returns is delivered, as long as
// the connection holds; go-redis reconnects and resubscribes after a failure, and
// decisions published meanwhile are lost).
func (s *Store) Subscribe(ctx context.Context, fn func(key string)) error {
	ps := s.rdb.Subscribe(ctx, s.Channel())
	if _, err := ps.Receive(ctx); err != nil {
		_ = ps.Close()
		return s.wrap(err, "SUBSCRIBE", s.Channel())
	}
	ch := ps.Channel()
	go func() {
		defer ps.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-ch:
				if !ok {
					return
				}
				fn(m.Payload)
			}
		}
	}()
	return nil
}
