// Package history describes the history of a cicd context: one Entry per
// write that changed it, saying when, which op, who asked and what changed.
//
// The store appends an entry in the same MULTI/EXEC as the write it records
// (same hash slot), so a write and its entry land together or not at all, and
// a replayed op (its op record found) writes neither. Entries are bounded per
// context (oldest trimmed first) and expire with the context. Values are
// redacted (the secrets of secrets.yaml become [REDACTED]) and truncated before
// they are stored; see docs/history.md.
package history

import "time"

// Who says on whose behalf a write was made. Only the fields that apply are
// set: a CustomRun's namespace, name, PipelineRun and pipeline task; the CLI's
// user; the verified approver of a gate (and how they decided: slack,
// kubernetes, cli).
type Who struct {
	Namespace    string `json:"namespace,omitempty"`
	CustomRun    string `json:"customRun,omitempty"`
	PipelineRun  string `json:"pipelineRun,omitempty"`
	PipelineTask string `json:"pipelineTask,omitempty"`
	User         string `json:"user,omitempty"`
	Approver     string `json:"approver,omitempty"`
	Via          string `json:"via,omitempty"`
}

// Change is one path whose value changed. Old and New are the compact JSON of
// the values, redacted; empty when the path did not exist before (Old) or no
// longer exists (New). A value longer than the store's bound is cut, and
// OldBytes / NewBytes then give its full size in bytes.
type Change struct {
	Path     string `json:"path"`
	Old      string `json:"old,omitempty"`
	New      string `json:"new,omitempty"`
	OldBytes int    `json:"oldBytes,omitempty"`
	NewBytes int    `json:"newBytes,omitempty"`
}

// Entry is one write of a context.
type Entry struct {
	Time time.Time `json:"time"`
	// Op is the operation that wrote: init, load, set, get (with sets),
	// handle-event, generate, decision (an approval gate's).
	Op      string   `json:"op"`
	Who     Who      `json:"who"`
	Changes []Change `json:"changes"`
	// More counts the changes left out past the per-entry bound.
	More int `json:"more,omitempty"`
}

// Touches says whether the entry changed path or anything under or above it
// (a filter on "state.version" keeps a change of "state" and of
// "state.version.major").
func (e Entry) Touches(path string) bool {
	for _, c := range e.Changes {
		if related(c.Path, path) {
			return true
		}
	}
	return false
}

func related(a, b string) bool {
	if len(a) > len(b) {
		a, b = b, a
	}
	return a == b || (len(b) > len(a) && b[:len(a)] == a && (b[len(a)] == '.' || b[len(a)] == '['))
}
