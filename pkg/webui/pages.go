package webui

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/history"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

// reviewWorkers is how many SubjectAccessReviews the home page asks at once.
const reviewWorkers = 8

type homeData struct {
	Namespaces []nsLink
	// Unlisted: the namespaces could not be listed (the viewer types one).
	Unlisted bool
	// More: more namespaces than MaxNamespaces exist; only the first were checked.
	More bool
}

type nsLink struct{ Name, URL string }

// home lists the namespaces whose CustomRuns the viewer may get, among the
// first MaxNamespaces of the cluster (listed with the controller's
// credentials), and offers a field to open any other.
func (s *Server) home(w http.ResponseWriter, r *http.Request, v *Viewer) {
	d := homeData{}
	names, more, err := s.namespaces(r.Context())
	if err != nil {
		s.o.Log.Warn("web UI: cannot list namespaces", "error", err)
		d.Unlisted = true
	}
	d.More = more
	allowed := make([]bool, len(names))
	var wg sync.WaitGroup
	slots := make(chan struct{}, reviewWorkers)
	for i, ns := range names {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			ok, err := s.auth.mayView(r.Context(), v, ns)
			allowed[i] = ok && err == nil
		}()
	}
	wg.Wait()
	for i, ns := range names {
		if allowed[i] {
			d.Namespaces = append(d.Namespaces, nsLink{ns, nsURL(ns)})
		}
	}
	s.render(w, http.StatusOK, "home", page{Title: "Namespaces", Viewer: v, Data: d})
}

// namespaces are the cluster's first MaxNamespaces namespaces, sorted,
// cached for AccessTTL; more says there are others.
func (s *Server) namespaces(ctx context.Context) (names []string, more bool, err error) {
	if c, ok := s.nsList.get(""); ok {
		return c[:len(c)-1], c[len(c)-1] == "more", nil
	}
	l, err := s.o.Kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{Limit: MaxNamespaces})
	if err != nil {
		return nil, false, err
	}
	for _, n := range l.Items {
		names = append(names, n.Name)
	}
	sort.Strings(names)
	more = l.Continue != ""
	flag := ""
	if more {
		flag = "more"
	}
	s.nsList.put("", append(append([]string(nil), names...), flag))
	return names, more, nil
}

// openNamespace sends the home page's field to the namespace's page.
func (s *Server) openNamespace(w http.ResponseWriter, r *http.Request, v *Viewer) {
	ns := strings.TrimSpace(r.URL.Query().Get("name"))
	if store.CheckNamespace(ns) != nil {
		s.problem(w, http.StatusBadRequest, "Not a namespace", "A namespace is a DNS label: lower-case letters, digits and '-', at most 63.", v)
		return
	}
	http.Redirect(w, r, nsURL(ns), http.StatusSeeOther)
}

// allowedNamespace answers 403 (the same for a namespace that does not exist)
// unless the viewer may get CustomRuns in the {ns} of the path.
func (s *Server) allowedNamespace(w http.ResponseWriter, r *http.Request, v *Viewer) (string, bool) {
	ns := r.PathValue("ns")
	if store.CheckNamespace(ns) != nil {
		s.forbidden(w, v, ns)
		return "", false
	}
	ok, err := s.auth.mayView(r.Context(), v, ns)
	if err != nil {
		s.o.Log.Warn("web UI: cannot review access", "error", err)
		s.problem(w, http.StatusServiceUnavailable, "Try again", "The API server cannot be asked what you may see right now.", v)
		return "", false
	}
	if !ok {
		s.forbidden(w, v, ns)
		return "", false
	}
	return ns, true
}

// currentStore is the store, or a 503 page while the controller has no
// configuration.
func (s *Server) currentStore(w http.ResponseWriter, v *Viewer) Store {
	var st Store
	if s.o.Store != nil {
		st = s.o.Store()
	}
	if st == nil {
		s.problem(w, http.StatusServiceUnavailable, "Not ready", "The controller has no valid configuration yet.", v)
	}
	return st
}

type namespaceData struct {
	Namespace string
	Contexts  []contextLink
	More      bool
	Gates     []gateView
	MoreGates bool
	GatesNote string
}

type contextLink struct {
	ID, URL string
	Updated time.Time
}

func (s *Server) namespacePage(w http.ResponseWriter, r *http.Request, v *Viewer) {
	ns, ok := s.allowedNamespace(w, r, v)
	if !ok {
		return
	}
	st := s.currentStore(w, v)
	if st == nil {
		return
	}
	cs, err := st.Contexts(r.Context(), ns, MaxContexts+1)
	if err != nil {
		s.o.Log.Warn("web UI: cannot list contexts", "namespace", ns, "error", err)
		s.problem(w, http.StatusServiceUnavailable, "Try again", "The contexts cannot be read right now.", v)
		return
	}
	d := namespaceData{Namespace: ns}
	if len(cs) > MaxContexts {
		cs, d.More = cs[:MaxContexts], true
	}
	for _, c := range cs {
		d.Contexts = append(d.Contexts, contextLink{ID: c.ID, URL: contextURL(ns, c.ID), Updated: c.Updated})
	}
	d.Gates, d.MoreGates, d.GatesNote = s.gatesOf(r.Context(), v, ns, "")
	s.render(w, http.StatusOK, "namespace", page{Title: ns, Viewer: v, Data: d})
}

// gatesOf lists gates as the viewer; note says why none could be listed.
func (s *Server) gatesOf(ctx context.Context, v *Viewer, ns, ref string) (gates []gateView, more bool, note string) {
	c, err := s.o.ViewerClient(v.Token)
	if err == nil {
		gates, more, err = listGates(ctx, c, v, ns, ref)
	}
	switch {
	case apierrors.IsForbidden(err):
		return nil, false, "You may not list the ApprovalGates of " + ns + " (RBAC: the ClusterRole cicdstatemgr-approver bound in the namespace)."
	case err != nil:
		s.o.Log.Warn("web UI: cannot list gates", "namespace", ns, "error", err)
		return nil, false, "The ApprovalGates cannot be listed right now."
	}
	return gates, more, ""
}

type contextData struct {
	Namespace, ID, NamespaceURL string
	Tree                        *node
	Shown                       int
	Truncated                   bool
	History                     []entryView
	MoreHistory                 bool
	HistoryNote                 string
	Gates                       []gateView
	GatesNote                   string
}

type entryView struct {
	Time    time.Time
	Op, Who string
	Changes []changeView
	More    int
}

type changeView struct {
	Path, Old, New     string
	OldBytes, NewBytes int
}

func (s *Server) contextPage(w http.ResponseWriter, r *http.Request, v *Viewer) {
	ns, ok := s.allowedNamespace(w, r, v)
	if !ok {
		return
	}
	id := r.PathValue("id")
	ref := store.Ref(ns, id)
	if store.CheckID(id) != nil {
		s.problem(w, http.StatusNotFound, "No such context", "Namespace "+ns+" has no context "+id+".", v)
		return
	}
	st := s.currentStore(w, v)
	if st == nil {
		return
	}
	doc, err := st.Get(r.Context(), ref)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.problem(w, http.StatusNotFound, "No such context", "Namespace "+ns+" has no context "+id+" (or it expired).", v)
		return
	case err != nil:
		s.o.Log.Warn("web UI: cannot read a context", "ref", ref, "error", err)
		s.problem(w, http.StatusServiceUnavailable, "Try again", "The context cannot be read right now.", v)
		return
	}
	d := contextData{Namespace: ns, ID: id, NamespaceURL: nsURL(ns)}
	d.Tree, d.Shown = treeOf(doc, MaxTreeNodes)
	d.Truncated = d.Shown >= MaxTreeNodes
	entries, err := st.History(r.Context(), ref, MaxHistory+1)
	if err != nil {
		s.o.Log.Warn("web UI: cannot read a history", "ref", ref, "error", err)
		d.HistoryNote = "The history cannot be read right now."
	}
	if len(entries) > MaxHistory {
		entries, d.MoreHistory = entries[:MaxHistory], true
	}
	for _, e := range entries {
		d.History = append(d.History, entryOf(e))
	}
	d.Gates, _, d.GatesNote = s.gatesOf(r.Context(), v, ns, ref)
	s.render(w, http.StatusOK, "context", page{Title: ns + "/" + id, Viewer: v, Data: d})
}

func entryOf(e history.Entry) entryView {
	ev := entryView{Time: e.Time, Op: e.Op, Who: whoOf(e.Who), More: e.More}
	for _, c := range e.Changes {
		cv := changeView{Path: c.Path, OldBytes: c.OldBytes, NewBytes: c.NewBytes}
		var full int
		if cv.Old, full = cut(c.Old, MaxValueBytes); full > 0 && cv.OldBytes == 0 {
			cv.OldBytes = full
		}
		if cv.New, full = cut(c.New, MaxValueBytes); full > 0 && cv.NewBytes == 0 {
			cv.NewBytes = full
		}
		ev.Changes = append(ev.Changes, cv)
	}
	return ev
}

// whoOf says on whose behalf an entry was written, in one line.
func whoOf(w history.Who) string {
	var parts []string
	if w.CustomRun != "" {
		p := "CustomRun " + w.Namespace + "/" + w.CustomRun
		if w.PipelineRun != "" {
			p += " (PipelineRun " + w.PipelineRun
			if w.PipelineTask != "" {
				p += ", task " + w.PipelineTask
			}
			p += ")"
		}
		parts = append(parts, p)
	}
	if w.User != "" {
		parts = append(parts, "user "+w.User)
	}
	if w.Approver != "" {
		p := "approver " + w.Approver
		if w.Via != "" {
			p += " via " + w.Via
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, "; ")
}

type decidedData struct {
	Gate     gateView
	Action   string
	Option   string
	Refusal  string
	Accepted bool
	Back     string
}

// decide records the viewer's decision on a gate, as the viewer: the API
// server's RBAC and admission policy accept it or say why not, and the page
// shows their answer.
func (s *Server) decide(w http.ResponseWriter, r *http.Request, v *Viewer) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if store.CheckNamespace(ns) != nil || name == "" || len(name) > 253 {
		s.problem(w, http.StatusNotFound, "No such gate", "There is no such ApprovalGate.", v)
		return
	}
	d := decision{Action: r.PostForm.Get("action"), Option: r.PostForm.Get("option"), Message: r.PostForm.Get("message")}
	if d.Action == "reject" {
		d.Option = ""
	}
	if err := d.check(); err != nil {
		s.problem(w, http.StatusBadRequest, "Bad request", err.Error(), v)
		return
	}
	back := nsURL(ns)
	c, err := s.o.ViewerClient(v.Token)
	if err != nil {
		s.problem(w, http.StatusInternalServerError, "Error", "Cannot build a client for you.", v)
		return
	}
	g, err := decide(r.Context(), c, v, ns, name, d)
	data := decidedData{Action: d.Action, Option: d.Option, Back: back, Accepted: err == nil}
	if g != nil {
		data.Gate = viewOf(g, v)
		if data.Gate.ContextURL != "" {
			data.Back = data.Gate.ContextURL
		}
	} else {
		data.Gate = gateView{Name: name, Namespace: ns}
	}
	status := http.StatusOK
	switch {
	case err == nil:
	case apierrors.IsNotFound(err) || (g == nil && apierrors.IsForbidden(err)):
		// RBAC forbids reading it, or it does not exist: the same answer
		s.problem(w, http.StatusNotFound, "No such gate", "There is no ApprovalGate "+name+" in "+ns+" that you may read.", v)
		return
	case errors.Is(err, errNotOffered):
		status, data.Refusal = http.StatusBadRequest, err.Error()
	case apierrors.IsForbidden(err) || apierrors.IsInvalid(err) || errors.Is(err, errDecided):
		status, data.Refusal = http.StatusForbidden, refusal(err)
	default:
		status, data.Refusal = http.StatusBadGateway, refusal(err)
	}
	s.render(w, status, "decided", page{Title: "Decision on " + name, Viewer: v, Data: data})
}
