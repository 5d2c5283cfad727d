package engine

import (
	"strings"
	"testing"

	"github.com/cicdstatemgr/cicdstatemgr/internal/fuzzbudget"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
)

// FuzzAccess checks the grant rules on any request and any share block:
// a CustomRun never writes configuration; another namespace never runs
// anything but get and set, never writes outside state, and is admitted only
// with a grant of its own namespace that covers what it does. Checking
// stays within the request's resource budget (internal/fuzzbudget).
func FuzzAccess(f *testing.F) {
	f.Add("team-a", "team-b", "get", "state.v", "team-b", "read")
	f.Add("team-a", "team-b", "set", "state.v", "team-b", "read")
	f.Add("team-a", "team-b", "set", "state.v", "team-b", "write")
	f.Add("team-a", "team-b", "set", "pipelines.x", "team-b", "write")
	f.Add("team-a", "team-a", "set", "jinja2Macros.all", "", "")
	f.Add("team-a", "team-b", "init", "state.v", "team-b", "write")
	f.Add("team-a", "team-c", "get", "", "team-b", "write")
	f.Add("team-a", "team-b", "handle-event", "", "team-b", "write")
	f.Fuzz(func(t *testing.T, owner, asker, op, setPath, grantNS, grantAccess string) {
		req := Request{Op: Op(op), Namespace: owner, Asker: asker, ID: "ctx"}
		if setPath != "" {
			req.Sets = []document.Assignment{{Path: setPath, Value: "v"}}
		}
		doc := document.NewMap()
		g := document.NewMap()
		g.Set("namespace", grantNS)
		g.Set("access", grantAccess)
		doc.Set(ShareKey, []any{g})

		var err error
		var admitErr error
		fuzzbudget.Check(t, fuzzbudget.For(fuzzbudget.Size(owner, asker, op, setPath, grantNS, grantAccess), 0), func() {
			err = checkAccess(req)
			admitErr = admit(req, doc)
		}, owner, asker, op, setPath, grantNS, grantAccess)
		if err == nil && asker != "" {
			for _, a := range req.Sets {
				if isConfigKey(topKey(a.Path)) {
					t.Fatalf("a CustomRun may set configuration %q", a.Path)
				}
			}
		}
		if err != nil || !req.foreign() {
			return
		}
		if req.Op != OpGet && req.Op != OpSet {
			t.Fatalf("another namespace may run %q", req.Op)
		}
		for _, a := range req.Sets {
			if topKey(a.Path) != "state" {
				t.Fatalf("another namespace may set %q", a.Path)
			}
		}
		admitted := admitErr == nil
		mayRead := grantNS == asker && (grantAccess == AccessRead || grantAccess == AccessWrite)
		mayWrite := grantNS == asker && grantAccess == AccessWrite
		switch {
		case admitted && !mayRead:
			t.Fatalf("%s admitted to %s's context without a grant (%s %s)", asker, owner, grantNS, grantAccess)
		case admitted && len(req.Sets) > 0 && !mayWrite:
			t.Fatalf("%s writes with a %q grant", asker, grantAccess)
		case !admitted && mayRead && (len(req.Sets) == 0 || mayWrite):
			t.Fatalf("%s refused despite a %q grant", asker, grantAccess)
		}
		if !admitted && !mayRead {
			if e := admit(req, doc); !strings.Contains(e.Error(), "not found") {
				t.Fatalf("a hidden context must read as a missing one: %v", e)
			}
		}
	})
}
