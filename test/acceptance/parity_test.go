package acceptance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cicdstatemgr/cicdstatemgr/internal/redistest"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
)

// Parity checks through the built CLI, against Redis, with the basics
// fixtures: how file:// values and app configs are read (as PyYAML reads
// them), what to_nice_yaml prints (as PyYAML's yaml.dump), and the "\|"
// escape of --set.

func newParityHarness(t *testing.T) *harness {
	t.Helper()
	srv := redistest.Start(t, redistest.WithUser("cicdstatemgr", "123$aBcZ"), redistest.WithDefaultUserDisabled())
	echo, err := StartEcho()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { echo.Close() })
	h := &harness{t: t, dir: t.TempDir(), echo: echo, redisAdr: srv.Addr}
	h.copyFixtures(filepath.Join("testdata", "basics"), srv.Port)
	return h
}

// cli runs the binary with the fixtures' config and secrets.
func (h *harness) cli(args ...string) result {
	h.t.Helper()
	return h.exec(append([]string{"--config", "config.yaml", "--secrets", "secrets.yaml"}, args...), nil)
}

func (h *harness) mustCLI(args ...string) result {
	h.t.Helper()
	res := h.cli(args...)
	if res.code != 0 {
		h.t.Fatalf("%q: exit %d\n%s", args, res.code, res.stderr)
	}
	return res
}

func (h *harness) write(name, text string) {
	h.t.Helper()
	if err := os.WriteFile(filepath.Join(h.dir, name), []byte(text), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// at reads one value of the stored document of id.
func (h *harness) at(id, path string) (any, bool) {
	h.t.Helper()
	h.lastID = id
	v, ok, err := document.Lookup(h.document(h.t), path)
	if err != nil {
		h.t.Fatal(err)
	}
	return v, ok
}

func (h *harness) initContext(id string) {
	h.t.Helper()
	h.mustCLI("--init-new", id, "--init-bases-dir", "bases", "--init-app-config-file", "app.yaml", "--set", "state.who=world")
}

func oneErrorLine(t *testing.T, res result, wants ...string) {
	t.Helper()
	if res.code == 0 {
		t.Fatalf("exit 0, want a failure\nstdout: %s", res.stdout)
	}
	lines := strings.Split(strings.TrimSpace(res.stderr), "\n")
	last := lines[len(lines)-1]
	if len(lines) != 1 || !strings.HasPrefix(last, "cicdstatemgr: ") {
		t.Errorf("want one error line on stderr, got %q", res.stderr)
	}
	for _, w := range wants {
		if !strings.Contains(last, w) {
			t.Errorf("error line %q lacks %q", last, w)
		}
	}
	if len(res.stderr) > 400 {
		t.Errorf("error line of %d bytes echoes the input: %.200s...", len(res.stderr), res.stderr)
	}
}

// A file:// value is JSON, else one YAML document as PyYAML reads it, else
// the raw text. A text starting with "{{ ... }}" is a YAML flow mapping whose
// key is a map, which PyYAML refuses: the text is stored as it is.
func TestParityFileValues(t *testing.T) {
	h := newParityHarness(t)
	h.initContext("parity-files")
	raw := map[string]string{
		"template.txt": "{{ hello(state.who) }} / {{ state.who }}\nsecond line\n",
		"flowkey.txt":  "{{ hello(state.who) }}\n",
		"listkey.txt":  "{[a, b]: c}\n",
		"twodocs.yaml": "a: 1\n---\nb: 2\n",
		"trailing.txt": "[1, 2] and more\n",
	}
	for name, text := range raw {
		h.write(name, text)
		h.mustCLI("--id", "parity-files", "--set", "state."+strings.Split(name, ".")[0]+"=file://"+name)
	}
	h.write("empty.txt", "")
	h.write("yaml11.yaml", "sha: 1e3\ntag: 08\nflag: on\nn: 012\n")
	h.mustCLI("--id", "parity-files", "--set", "state.empty=file://empty.txt|state.yaml11=file://yaml11.yaml")

	for name, text := range raw {
		key := "state." + strings.Split(name, ".")[0]
		if v, _ := h.at("parity-files", key); v != text {
			t.Errorf("%s: stored %s, want the raw text %q", key, document.MustJSON(v, document.JSONStyle{}), text)
		}
	}
	if v, ok := h.at("parity-files", "state.empty"); !ok || v != nil {
		t.Errorf("state.empty: %v %v, want null (PyYAML reads an empty file as None)", v, ok)
	}
	if v, _ := h.at("parity-files", "state.yaml11"); document.MustJSON(v, document.JSONStyle{}) != `{"sha":"1e3","tag":"08","flag":true,"n":10}` {
		t.Errorf("state.yaml11 = %s", document.MustJSON(v, document.JSONStyle{}))
	}
	// The stored template renders (the value is text, not a map).
	h.write("hello.txt", "{{ helloWorld(state.who) }} / {{ state.who }}")
	h.mustCLI("--id", "parity-files", "--set", "state.hello=file://hello.txt")
	if res := h.mustCLI("--id", "parity-files", "--get", "state.hello"); res.stdout != "Hello world msg = world / world\n" {
		t.Errorf("--get state.hello printed %q", res.stdout)
	}
}

// An app config with a map or list as a key, or with a second document,
// fails with one clear line (that does not echo the file) and stores nothing.
func TestParityAppConfigRejected(t *testing.T) {
	h := newParityHarness(t)
	cases := []struct {
		name, text string
		wants      []string
	}{
		{"map key", "cicd-contexts:\n  stage:\n    channel: c\n    {{ hello }}: x\n",
			[]string{"InvalidAppConfig", "line 4, column 5: a mapping key is a map"}},
		{"list key", "cicd-contexts:\n  stage:\n    ? [a, b]\n    : x\n",
			[]string{"InvalidAppConfig", "a mapping key is a list"}},
		// just under the default budgets.appConfigBytes (1 MiB)
		{"huge file", "cicd-contexts:\n  stage:\n    big: " + strings.Repeat("x", 1<<20-100) + "\n    {[a]: 1}: x\n",
			[]string{"InvalidAppConfig", "line 4, column 5: a mapping key is a map"}},
		{"over the app config budget", "cicd-contexts:\n  stage:\n    big: " + strings.Repeat("x", 1<<20) + "\n",
			[]string{"InvalidAppConfig", "over the budget of 1048576 bytes (budgets.appConfigBytes)"}},
		{"second document", "cicd-contexts:\n  stage: {channel: c}\n---\nother: 1\n",
			[]string{"InvalidAppConfig", "expected a single document, but found another document at line 3"}},
		{"text after the document", "{cicd-contexts: {stage: {channel: c}}} and more\n",
			[]string{"InvalidAppConfig", "content after the end of the document"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h.t = t
			h.write("bad-app.yaml", c.text)
			res := h.cli("--init-new", "parity-bad", "--init-app-config-file", "bad-app.yaml", "--set", "state.a=b")
			oneErrorLine(t, res, c.wants...)
			oneErrorLine(t, h.cli("--id", "parity-bad", "--get", "state"), "ContextNotFound")
		})
	}
}

// to_nice_yaml prints what PyYAML's yaml.dump(value, default_flow_style=False,
// indent=N) prints: lists flush under their key at every depth.
func TestParityToNiceYAML(t *testing.T) {
	h := newParityHarness(t)
	h.initContext("parity-yaml")
	h.write("data.json", `{"k": [1, {"a": [2, {"b": [3, [4, 5]]}]}], "m": {"n": [[6, 7], {"o": "p"}], "e": [], "f": {}}, "s": "it's: x", "u": "é", "q": "123"}`)
	// A template file is a YAML flow mapping with a map key: stored as text.
	h.write("tmpl.txt", "{{ state.data|to_nice_yaml }}")
	h.mustCLI("--id", "parity-yaml", "--set", "state.data=file://data.json|state.tmpl=file://tmpl.txt",
		"--set", `state.tmpl4={{ state.data\|to_nice_yaml:4 }}`)
	want := "k:\n- 1\n- a:\n  - 2\n  - b:\n    - 3\n    - - 4\n      - 5\nm:\n  n:\n  - - 6\n    - 7\n  - o: p\n  e: []\n  f: {}\ns: 'it''s: x'\nu: \"\\xE9\"\nq: '123'\n"
	if res := h.mustCLI("--id", "parity-yaml", "--get", "state.tmpl"); res.stdout != want+"\n" {
		t.Errorf("to_nice_yaml:\n got %q\nwant %q", res.stdout, want+"\n")
	}
	want4 := "k:\n- 1\n-   a:\n    - 2\n    -   b:\n        - 3\n        -   - 4\n            - 5\nm:\n    n:\n    -   - 6\n        - 7\n    -   o: p\n    e: []\n    f: {}\ns: 'it''s: x'\nu: \"\\xE9\"\nq: '123'\n"
	if res := h.mustCLI("--id", "parity-yaml", "--get", "state.tmpl4"); res.stdout != want4+"\n" {
		t.Errorf("to_nice_yaml:4:\n got %q\nwant %q", res.stdout, want4+"\n")
	}
}

// '|' separates pairs in one --set, as in the original; "\|" is a literal
// '|' and, just before a '|', "\\" a literal backslash.
func TestParitySetPipeEscape(t *testing.T) {
	h := newParityHarness(t)
	h.initContext("parity-pipe")
	h.mustCLI("--id", "parity-pipe", "--set", "state.list[]=a,b,c")
	h.mustCLI("--id", "parity-pipe",
		"--set", `state.tmpl={{ state.list\|length }}|state.other=x`,
		"--set", `state.bs=x\\|state.y=z`,
		"--set", `state.lit=a\\\|b`,
		"--set", `state.win=C:\dir\file`,
		"--set", `state.cut={{ state.list|length }}`)
	want := map[string]string{
		"state.tmpl":  "{{ state.list|length }}",
		"state.other": "x",
		"state.bs":    `x\`,
		"state.y":     "z",
		"state.lit":   `a\|b`,
		"state.win":   `C:\dir\file`,
		// unescaped, the value is cut at '|' as the original cuts it (the
		// rest, "length }}", has no '=' and is skipped)
		"state.cut": "{{ state.list",
	}
	for p, w := range want {
		if v, _ := h.at("parity-pipe", p); v != w {
			t.Errorf("%s = %s, want %q", p, document.MustJSON(v, document.JSONStyle{}), w)
		}
	}
	if res := h.mustCLI("--id", "parity-pipe", "--get", "state.tmpl"); res.stdout != "3\n" {
		t.Errorf("--get state.tmpl printed %q, want 3", res.stdout)
	}
}
