package engine

import (
	"fmt"
	"strings"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

// Who may do what with a context (docs/security.md):
//
//   - a context belongs to the namespace that created it (Request.Namespace);
//   - a request from a namespace (Request.Asker: a CustomRun) writes data
//     only: configuration keys change only by init from an app config;
//   - a request from another namespace sees the context only when the
//     owner's app config shares it with that namespace (the `share` block):
//     `read` allows get (and history), `write` allows get and set of state. Everything else
//     (init, load, handle-event, generate) is the owner's alone. A context
//     not shared with the asker is reported exactly like a missing one.

// ShareKey is the document key of the owner's grants, from the app config:
//
//	share:
//	  - {namespace: prod, access: read}    # or write: read and set state
const ShareKey = "share"

// Access levels of a grant.
const (
	AccessRead  = "read"
	AccessWrite = "write"
)

// ConfigKeys are the top-level document keys that decide behaviour (event
// handlers, generators, macros, variables, grants): a CustomRun's set and
// set-yaml may not write them.
var ConfigKeys = []string{"pipelines", "jinja2Macros", "jinja2-macros", "appPipelinesConfig", "variables", "cicd-contexts", "bases", ShareKey}

// protectedVars are template-context keys a tmpl-ctx-var of a CustomRun may
// not shadow: the macros put in front of every template.
var protectedVars = []string{"jinja2Macros"}

// ref is the store's name of the request's context.
func (req Request) ref() string { return store.Ref(req.Namespace, req.ID) }

// foreign says whether the request comes from a namespace other than the
// owner's.
func (req Request) foreign() bool { return req.Asker != "" && req.Asker != req.Namespace }

// notFound is the one answer for a missing context and for one the asker may
// not see.
func (req Request) notFound() *Error {
	return &Error{Reason: ReasonContextNotFound, Message: fmt.Sprintf("cicd context %q not found in namespace %q", req.ID, req.Namespace), Err: store.ErrNotFound}
}

// checkAccess validates who asks for what before anything is read: the
// names, the data-only rule of CustomRuns and the ops another namespace may
// run. Whether a grant exists is checked against the document (admit).
func checkAccess(req Request) error {
	if err := store.CheckNamespace(req.Namespace); err != nil {
		return Errorf(ReasonInvalidParams, "namespace: %v", err)
	}
	if err := store.CheckID(req.ID); err != nil {
		return Errorf(ReasonInvalidParams, "id: %v", err)
	}
	if req.Asker == "" {
		return nil
	}
	for _, a := range req.Sets {
		if key := topKey(a.Path); isConfigKey(key) {
			return Errorf(ReasonInvalidParams, "set %s: %q is configuration (one of %s); it changes only by init from an app config, a CustomRun sets state and other data",
				a.Path, key, strings.Join(ConfigKeys, ", "))
		}
	}
	for _, v := range req.Vars {
		for _, p := range protectedVars {
			if topKey(v.Key) == p {
				return Errorf(ReasonInvalidParams, "tmpl-ctx-var %s: %q cannot be replaced by a CustomRun", v.Key, p)
			}
		}
	}
	if !req.foreign() {
		return nil
	}
	switch {
	case req.Op == OpInit:
		return Errorf(ReasonInvalidParams, "init creates a context in the CustomRun's own namespace: use an id without a namespace")
	case req.Op != OpGet && req.Op != OpSet && req.Op != OpHistory, req.Event != nil:
		return Errorf(ReasonInvalidParams, "only CustomRuns of namespace %q may %s its contexts; another namespace may get and read the history, or set state when shared with write access", req.Namespace, req.Op)
	}
	for _, a := range req.Sets {
		if topKey(a.Path) != "state" {
			return Errorf(ReasonInvalidParams, "set %s: a CustomRun of another namespace may set state only", a.Path)
		}
	}
	return nil
}

// admit checks req against the grants of doc: nil for the owner; for another
// namespace, the same error as a missing context unless doc is shared with
// it, and a refusal when it is shared for reading only and req writes.
func admit(req Request, doc *document.Map) error {
	if !req.foreign() {
		return nil
	}
	switch grantOf(doc, req.Asker) {
	case AccessWrite:
		return nil
	case AccessRead:
		if len(req.Sets) == 0 {
			return nil
		}
		return Errorf(ReasonInvalidParams, "cicd context %q of namespace %q is shared with namespace %q for reading only", req.ID, req.Namespace, req.Asker)
	}
	return req.notFound()
}

// grantOf is the access the share block of doc grants namespace: write,
// read, or "" for none.
func grantOf(doc *document.Map, namespace string) string {
	best := ""
	shares, _ := doc.Get(ShareKey)
	list, _ := shares.([]any)
	for _, s := range list {
		g, ok := s.(*document.Map)
		if !ok {
			continue
		}
		if ns, _ := g.GetString("namespace"); ns != namespace {
			continue
		}
		switch access, _ := g.GetString("access"); access {
		case AccessWrite:
			return AccessWrite
		case AccessRead:
			best = AccessRead
		}
	}
	return best
}

// checkShare validates the share block of a new document.
func checkShare(doc *document.Map) error {
	v, ok := doc.Get(ShareKey)
	if !ok || v == nil {
		return nil
	}
	list, isList := v.([]any)
	if !isList {
		return Errorf(ReasonInvalidAppConfig, "share must be a list of {namespace, access}, not a %s", document.TypeName(v))
	}
	for i, s := range list {
		g, isMap := s.(*document.Map)
		if !isMap {
			return Errorf(ReasonInvalidAppConfig, "share[%d] must be a map {namespace, access}, not a %s", i, document.TypeName(s))
		}
		ns, _ := g.GetString("namespace")
		if err := store.CheckNamespace(ns); err != nil {
			return Errorf(ReasonInvalidAppConfig, "share[%d].namespace: %v", i, err)
		}
		if access, _ := g.GetString("access"); access != AccessRead && access != AccessWrite {
			return Errorf(ReasonInvalidAppConfig, "share[%d].access must be %q or %q (read and set state)", i, AccessRead, AccessWrite)
		}
	}
	return nil
}

// topKey is the top-level key a dotted path starts with ("state" for
// "state.a.b", "tags" for "tags[]").
func topKey(path string) string {
	first, _, _ := strings.Cut(strings.TrimSpace(path), ".")
	first = strings.TrimSuffix(strings.TrimSuffix(first, "[]"), "{}")
	return first
}

func isConfigKey(k string) bool {
	for _, c := range ConfigKeys {
		if k == c {
			return true
		}
	}
	return false
}
