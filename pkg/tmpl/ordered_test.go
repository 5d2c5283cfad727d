package tmpl

import (
	"testing"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
)

// Templates get the context's *document.Map values themselves (pongo2's
// OrderedMap): keys, order, length, truthiness, `in`, printing.
func TestDocumentMapsInTemplates(t *testing.T) {
	ctx := ctxYAML(t, `
m: {z: 1, a: null, Keys: k, Set: s, Len: 7, n: {y: [1, {b: 2}]}}
empty: {}
l: [x, {q: 1}]
`)
	ctx.Set("nilmap", (*document.Map)(nil))
	inner := document.NewMap()
	inner.Set("none", (*document.Map)(nil))
	ctx.Set("holder", inner)
	runRenderCases(t, New(Options{}), ctx, []renderCase{
		{name: "keys named like methods are keys", src: "{{ m.Keys }}{{ m.Set }}{{ m.Len }}", want: "ks7"},
		{name: "methods are not reachable", src: "{{ m.Range }}|{{ m.GetString }}", want: "|"},
		{name: "no method calls", src: "{{ m.Delete('z') }}", wantErr: "'m.Delete' is undefined"},
		{name: "subscript", src: "{% with k='z' %}{{ m[k] }}{% endwith %}", want: "1"},
		{name: "non-string subscript", src: "[{{ m[1] }}]", want: "[]"},
		{name: "non-string subscript then more", src: "{% with p=m[1] %}{{ p.x }}{% endwith %}", wantErr: "'p' is null"},
		{name: "index on a map", src: "{{ m.0 }}", wantErr: "can't access an index on type map"},
		{name: "null value", src: "[{{ m.a }}]", want: "[]"},
		{name: "attribute of a null value", src: "{{ m.a.x }}", wantErr: "'m.a' is null and has no attribute 'x'"},
		{name: "deep path", src: "{{ m.n.y.1.b }}", want: "2"},
		{name: "walk with null value", src: "{% for k, v in m %}{{ k }}[{{ v }}]{% endfor %}", want: "z[1]a[]Keys[k]Set[s]Len[7]n[{'y': [1, {'b': 2}]}]"},
		{name: "reversed walk", src: "{% for k in m reversed %}{{ k }},{% endfor %}", want: "n,Len,Set,Keys,a,z,"},
		{name: "sorted walk", src: "{% for k in m sorted %}{{ k }},{% endfor %}", want: "Keys,Len,Set,a,n,z,"},
		{name: "empty walk", src: "{% for k in empty %}{{ k }}{% empty %}none{% endfor %}", want: "none"},
		{name: "length", src: "{{ m|length }} {{ empty|length }} {{ m|length_is:6 }}", want: "6 0 True"},
		{name: "truthiness", src: "{% if m %}m{% endif %}{% if empty %}e{% endif %}{% if not empty %}!e{% endif %}{{ empty|default:'d' }}", want: "m!ed"},
		{name: "in", src: "{% if 'z' in m %}z{% endif %}{% if 'q' in m %}q{% endif %}{% if 1 in m %}1{% endif %}{% if 'a' in m %}a{% endif %}", want: "za"},
		{name: "equality is identity", src: "{% if m == m %}same{% endif %}{% if m != empty %} differ{% endif %}", want: "same differ"},
		{name: "printed", src: "{{ m.n }} {{ l }} {{ empty }}", want: "{'y': [1, {'b': 2}]} ['x', {'q': 1}] {}"},
		{name: "printed by stringformat", src: "{{ m.n|stringformat:'<%s>' }}{{ l|stringformat:'%v' }}", want: "<{'y': [1, {'b': 2}]}>['x', {'q': 1}]"},
		{name: "text filters", src: "{{ l|upper }}", want: "['X', {'Q': 1}]"},
		{name: "macro argument", src: "{% macro p(x) %}{{ x.z }}{{ x }}{% endmacro %}{{ p(m.n.y.1) }}", want: "{'b': 2}"},
		{name: "nil map is null", src: "[{{ nilmap }}]{% if nilmap %}t{% endif %}{{ nilmap|length }}{% for k in nilmap %}k{% endfor %}", want: "[]0"},
		{name: "attribute of a nil map", src: "{{ nilmap.x }}", wantErr: "'nilmap' is null and has no attribute 'x'"},
		{name: "nested nil map", src: "{{ holder }}|{{ holder|json_dumps }}|[{{ holder.none }}]", want: `{'none': None}|{"none": null}|[]`},
		{name: "nested nil map attribute", src: "{{ holder.none.x }}", wantErr: "'holder.none' is null and has no attribute 'x'"},
	})
}

// A render reads the document; it neither copies nor changes it.
func TestRenderDoesNotCopyOrChangeTheDocument(t *testing.T) {
	env := New(Options{})
	// (no |length: 340 and 2 box and print with different allocations)
	src := "{{ state.apps.app001.name }}{% if 'app001' in state.apps %}y{% endif %}{% if state.apps %}t{% endif %}" +
		"{% for k, v in state.apps.app002.meta %}{{ k }}{% endfor %}"
	big := bigContext()
	before := document.MustJSON(big, document.JSONStyle{})
	small := document.NewMap()
	small.Set("channel", "stage")
	state, apps := document.NewMap(), document.NewMap()
	for _, id := range []string{"app001", "app002"} {
		app, _ := big.Get("state")
		a, _ := app.(*document.Map).GetMap("apps")
		v, _ := a.Get(id)
		apps.Set(id, v)
	}
	state.Set("apps", apps)
	small.Set("state", state)

	allocs := func(ctx *document.Map) float64 {
		if _, err := env.Render(src, ctx); err != nil {
			t.Fatal(err)
		}
		return testing.AllocsPerRun(20, func() {
			if _, err := env.Render(src, ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
	outSmall, _ := env.Render(src, small)
	outBig, _ := env.Render(src, big)
	if want := "application-338ytownerreposcore"; outSmall != want || outBig != want {
		t.Fatalf("renders = %q, %q", outSmall, outBig)
	}
	// A copy of the document would cost thousands of allocations with 340
	// apps (5,553 against 109 before maps were read in place); the race
	// detector and the GC move the average by one or two either way.
	if a, b := allocs(small), allocs(big); b > 2*a {
		t.Errorf("allocations per render: %v with 2 apps, %v with 340: the render depends on the document size", a, b)
	}
	if after := document.MustJSON(big, document.JSONStyle{}); after != before {
		t.Error("rendering changed the document")
	}
}
