package acceptance

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cicdstatemgr/cicdstatemgr/internal/redistest"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
)

// FixturesEnv names a fixtures folder to run instead of testdata/basics.
const FixturesEnv = "CICDSTATEMGR_FIXTURES"

// fixtureEchoAddr and fixtureRedisPort are what the fixtures name; the
// runner rewrites them to the servers it started.
const (
	fixtureEchoAddr  = "127.0.0.1:18080"
	fixtureRedisPort = "port: 6379"
)

var cliBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cicdstatemgr-acceptance-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cliBinary = filepath.Join(dir, "cicdstatemgr")
	build := exec.Command("go", "build", "-o", cliBinary, "github.com/cicdstatemgr/cicdstatemgr/cmd/cicdstatemgr")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // static, as `make build` makes it
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the CLI:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type harness struct {
	t        *testing.T
	dir      string
	echo     *EchoServer
	redisAdr string
	// lastID is the id of the last command, for doc checks.
	lastID string
}

func fixturesDir() string {
	if d := os.Getenv(FixturesEnv); d != "" {
		return d
	}
	return filepath.Join("testdata", "basics")
}

func TestBasicsCases(t *testing.T) {
	srv := redistest.Start(t, redistest.WithUser("cicdstatemgr", "123$aBcZ"), redistest.WithDefaultUserDisabled())
	echo, err := StartEcho()
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	h := &harness{t: t, dir: t.TempDir(), echo: echo, redisAdr: srv.Addr}
	h.copyFixtures(fixturesDir(), srv.Port)

	raw, err := os.ReadFile(filepath.Join(h.dir, "cases.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	root, err := document.ParseYAMLMap(raw)
	if err != nil {
		t.Fatal(err)
	}
	casesV, _ := root.Get("cases")
	cases, _ := casesV.([]any)
	if len(cases) == 0 {
		t.Fatal("no cases in cases.yaml")
	}
	for _, cv := range cases {
		c := cv.(*document.Map)
		name, _ := c.GetString("name")
		t.Run(name, func(t *testing.T) { h.run(t, c) })
	}
}

// copyFixtures copies the folder to the scratch dir, pointing the configs at
// our redis and echo servers.
func (h *harness) copyFixtures(src string, redisPort int) {
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		dst := filepath.Join(h.dir, rel)
		if info.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		b = bytes.ReplaceAll(b, []byte(fixtureEchoAddr), []byte(h.echo.Addr))
		// the same address inside $regex expected values
		b = bytes.ReplaceAll(b, []byte(regexp.QuoteMeta(fixtureEchoAddr)), []byte(regexp.QuoteMeta(h.echo.Addr)))
		if rel == "config.yaml" {
			b = bytes.ReplaceAll(b, []byte(fixtureRedisPort), []byte("port: "+strconv.Itoa(redisPort)))
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

type result struct {
	code           int
	stdout, stderr string
	http           []Request
}

func (h *harness) exec(args []string, env map[string]string) result {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, cliBinary, args...)
	cmd.Dir = h.dir
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "CICDSTATEMGR_") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else {
			h.t.Fatalf("running the CLI: %v", err)
		}
	}
	return result{code: code, stdout: out.String(), stderr: errb.String(), http: h.echo.Take()}
}

func (h *harness) run(t *testing.T, c *document.Map) {
	h.setup(t, c)
	args := strs(get(c, "args"))
	env := map[string]string{}
	if em, ok := get(c, "env").(*document.Map); ok {
		em.Range(func(k string, v any) bool { env[k] = fmt.Sprint(v); return true })
	}
	h.echo.Take()
	res := h.exec(args, env)
	h.lastID = commandID(args, env, h.lastID)
	m := &matcher{t: t, h: h, res: res}

	want := get(c, "exit_code")
	switch {
	case want == nil && res.code != 0, want == "nonzero" && res.code == 0:
		t.Errorf("exit code %d, want %v\nstderr: %s", res.code, orZero(want), res.stderr)
	case want != nil && want != "nonzero" && fmt.Sprint(want) != strconv.Itoa(res.code):
		t.Errorf("exit code %d, want %v\nstderr: %s", res.code, want, res.stderr)
	}
	if res.code != 0 && want == "nonzero" {
		if lines := strings.Split(strings.TrimSpace(res.stderr), "\n"); strings.TrimSpace(res.stderr) == "" || !strings.Contains(lines[len(lines)-1], "cicdstatemgr:") {
			t.Errorf("a failure must end with one clear line on stderr, got %q", res.stderr)
		}
	}
	if c.Has("stdout_json") {
		got, err := document.ParseJSON([]byte(res.stdout))
		if err != nil {
			t.Errorf("stdout is not JSON: %q", res.stdout)
		} else {
			m.match("stdout_json", get(c, "stdout_json"), got, false)
		}
	} else {
		m.match("stdout", orEmpty(get(c, "stdout")), res.stdout, false)
	}
	if hv := get(c, "http"); c.Has("http") {
		m.checkHTTP(hv)
	}
	if dm, ok := get(c, "doc").(*document.Map); ok {
		m.checkDoc(dm)
	}
	if fm, ok := get(c, "files").(*document.Map); ok {
		m.checkFiles(fm)
	}
}

func orZero(v any) any {
	if v == nil {
		return 0
	}
	return v
}

func orEmpty(v any) any {
	if v == nil {
		return ""
	}
	return v
}

// commandID is the context id a command worked on.
func commandID(args []string, env map[string]string, last string) string {
	for i, a := range args {
		if (a == "--init-new" || a == "--id") && i+1 < len(args) {
			return args[i+1]
		}
	}
	if id := env["CICDSTATEMGR_CONTEXT_DATA_ID"]; id != "" {
		return id
	}
	return last
}

func (h *harness) setup(t *testing.T, c *document.Map) {
	s, ok := get(c, "setup").(*document.Map)
	if !ok {
		return
	}
	for _, p := range strs(get(s, "remove")) {
		if err := os.RemoveAll(filepath.Join(h.dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	if wf, ok := get(s, "write_files").(*document.Map); ok {
		wf.Range(func(p string, v any) bool {
			text := strings.ReplaceAll(fmt.Sprint(v), fixtureEchoAddr, h.echo.Addr)
			if err := os.WriteFile(filepath.Join(h.dir, p), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			return true
		})
	}
}

// document reads the stored document as `--get '$'` prints it.
func (h *harness) document(t *testing.T) any {
	res := h.exec([]string{"--config", "config.yaml", "--secrets", "secrets.yaml", "--id", h.lastID, "--get", "$"}, nil)
	if res.code != 0 {
		t.Fatalf("reading the document of %s: exit %d: %s", h.lastID, res.code, res.stderr)
	}
	doc, err := document.ParseJSON([]byte(res.stdout))
	if err != nil {
		t.Fatalf("--get '$' did not print JSON: %v\n%s", err, res.stdout)
	}
	return doc
}

type matcher struct {
	t   *testing.T
	h   *harness
	res result
	doc any
}

func (m *matcher) stored() any {
	if m.doc == nil {
		m.doc = m.h.document(m.t)
	}
	return m.doc
}

var refPattern = regexp.MustCompile(`\$\{(doc|http):([^${}]*)\}`)

// expand replaces ${doc:PATH} and ${http:N.json.PATH|N.headers.NAME}, innermost first.
func (m *matcher) expand(s string) string {
	for i := 0; i < 10 && strings.Contains(s, "${"); i++ {
		s = refPattern.ReplaceAllStringFunc(s, func(ref string) string {
			sub := refPattern.FindStringSubmatch(ref)
			switch sub[1] {
			case "doc":
				v, ok, err := document.Lookup(m.stored(), sub[2])
				if err != nil || !ok {
					m.t.Errorf("%s: no such value in the document", ref)
					return ref
				}
				return scalarText(v)
			default:
				return m.httpRef(ref, sub[2])
			}
		})
	}
	return s
}

func (m *matcher) httpRef(ref, spec string) string {
	idxS, rest, _ := strings.Cut(spec, ".")
	idx, err := strconv.Atoi(idxS)
	if err != nil || idx >= len(m.res.http) {
		m.t.Errorf("%s: no such request (got %d)", ref, len(m.res.http))
		return ref
	}
	req := m.res.http[idx]
	kind, path, _ := strings.Cut(rest, ".")
	switch kind {
	case "headers":
		return req.Headers[strings.ToLower(path)]
	case "json":
		v, err := document.ParseJSON([]byte(req.Body))
		if err == nil {
			if got, ok, _ := document.Lookup(v, path); ok {
				return scalarText(got)
			}
		}
	}
	m.t.Errorf("%s: not found in request %d", ref, idx)
	return ref
}

func scalarText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return document.MustJSON(v, document.JSONStyle{})
}

// match compares got with an expected value or matcher; path names the check.
func (m *matcher) match(path string, want, got any, absent bool) {
	m.t.Helper()
	if wm, ok := want.(*document.Map); ok && isMatcher(wm) {
		m.matchSpecial(path, wm, got, absent)
		return
	}
	if absent {
		m.t.Errorf("%s: missing, want %s", path, show(want))
		return
	}
	switch w := want.(type) {
	case string:
		w = m.expand(w)
		if g, ok := got.(string); !ok || g != w {
			m.t.Errorf("%s:\n got  %s\n want %s", path, show(got), show(w))
		}
	case *document.Map:
		g, ok := got.(*document.Map)
		if !ok {
			m.t.Errorf("%s: got %s, want a map %s", path, show(got), show(want))
			return
		}
		if g.Len() != w.Len() {
			m.t.Errorf("%s: got keys %v, want %v", path, g.Keys(), w.Keys())
		}
		w.Range(func(k string, wv any) bool {
			gv, has := g.Get(m.expand(k))
			m.match(path+"."+k, wv, gv, !has)
			return true
		})
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			m.t.Errorf("%s: got %s, want %s", path, show(got), show(want))
			return
		}
		for i := range w {
			m.match(fmt.Sprintf("%s[%d]", path, i), w[i], g[i], false)
		}
	default:
		if !scalarEqual(want, got) {
			m.t.Errorf("%s: got %s, want %s", path, show(got), show(want))
		}
	}
}

func scalarEqual(a, b any) bool {
	fa, aok := num(a)
	fb, bok := num(b)
	if aok && bok {
		return math.Abs(fa-fb) < 1e-9
	}
	return a == b
}

func num(v any) (float64, bool) {
	switch t := v.(type) {
	case int:
		return float64(t), true
	case float64:
		return t, true
	}
	return 0, false
}

func isMatcher(m *document.Map) bool {
	for _, k := range m.Keys() {
		if !strings.HasPrefix(k, "$") {
			return false
		}
	}
	return m.Len() > 0
}

func (m *matcher) matchSpecial(path string, spec *document.Map, got any, absent bool) {
	m.t.Helper()
	spec.Range(func(k string, arg any) bool {
		switch k {
		case "$absent":
			if arg == true && !absent {
				m.t.Errorf("%s: want absent, got %s", path, show(got))
			}
		case "$any":
			if absent {
				m.t.Errorf("%s: missing", path)
			}
		case "$regex":
			s, ok := got.(string)
			re, err := regexp.Compile(`(?s)^(?:` + m.expand(fmt.Sprint(arg)) + `)$`)
			if err != nil {
				m.t.Errorf("%s: bad $regex: %v", path, err)
			} else if absent || !ok || !re.MatchString(s) {
				m.t.Errorf("%s: %s does not match /%s/", path, show(got), arg)
			}
		case "$keys":
			g, ok := got.(*document.Map)
			want := strs(arg)
			if !ok || strings.Join(g.Keys(), ",") != strings.Join(want, ",") {
				var keys []string
				if ok {
					keys = g.Keys()
				}
				m.t.Errorf("%s: keys %v, want %v", path, keys, want)
			}
		case "$json", "$json_fields":
			s, ok := got.(string)
			parsed, err := document.ParseJSON([]byte(s))
			if absent || !ok || err != nil {
				m.t.Errorf("%s: %s is not a JSON string", path, show(got))
				return true
			}
			if k == "$json" {
				m.match(path, arg, parsed, false)
				return true
			}
			fields, _ := arg.(*document.Map)
			fields.Range(func(fp string, fv any) bool {
				v, has, err := document.Lookup(parsed, fp)
				if err != nil {
					m.t.Errorf("%s: bad path %s: %v", path, fp, err)
				}
				m.match(path+"→"+fp, fv, v, !has)
				return true
			})
		default:
			m.t.Errorf("%s: unknown matcher %s", path, k)
		}
		return true
	})
}

func (m *matcher) checkDoc(checks *document.Map) {
	doc := m.stored()
	checks.Range(func(p string, want any) bool {
		p = m.expand(p)
		expr := p
		if p == "." {
			expr = "$"
		}
		got, ok, err := document.Lookup(doc, expr)
		if err != nil {
			m.t.Errorf("doc %s: %v", p, err)
			return true
		}
		m.match("doc "+p, want, got, !ok)
		return true
	})
}

func (m *matcher) checkHTTP(want any) {
	wl, _ := want.([]any)
	if len(wl) != len(m.res.http) {
		m.t.Errorf("http: %d requests, want %d: %+v", len(m.res.http), len(wl), m.res.http)
		return
	}
	for i, wv := range wl {
		w := wv.(*document.Map)
		req := m.res.http[i]
		pfx := fmt.Sprintf("http[%d]", i)
		if v, ok := w.GetString("method"); ok && v != req.Method {
			m.t.Errorf("%s.method = %s, want %s", pfx, req.Method, v)
		}
		if v, ok := w.GetString("path"); ok && v != req.Path {
			m.t.Errorf("%s.path = %s, want %s", pfx, req.Path, v)
		}
		if hm, ok := get(w, "headers").(*document.Map); ok {
			hm.Range(func(k string, hv any) bool {
				g, has := req.Headers[strings.ToLower(k)]
				m.match(pfx+".headers."+k, hv, g, !has)
				return true
			})
		}
		parsed, jerr := document.ParseJSON([]byte(req.Body))
		if jw := get(w, "json"); jw != nil {
			if jerr != nil {
				m.t.Errorf("%s: body is not JSON: %q", pfx, req.Body)
			} else {
				m.match(pfx+".json", jw, parsed, false)
			}
		}
		if ko := get(w, "json_key_order"); ko != nil {
			pm, ok := parsed.(*document.Map)
			if !ok || strings.Join(pm.Keys(), ",") != strings.Join(strs(ko), ",") {
				m.t.Errorf("%s: key order %v, want %v", pfx, keysOf(parsed), strs(ko))
			}
		}
		if b, ok := w.GetString("body"); ok {
			if want := m.expand(b); want != req.Body {
				m.t.Errorf("%s.body:\n got  %q\n want %q", pfx, req.Body, want)
			}
		}
	}
}

func keysOf(v any) []string {
	if m, ok := v.(*document.Map); ok {
		return m.Keys()
	}
	return nil
}

func (m *matcher) checkFiles(files *document.Map) {
	files.Range(func(p string, cv any) bool {
		checks, _ := cv.(*document.Map)
		full := filepath.Join(m.h.dir, p)
		data, err := os.ReadFile(full)
		if err != nil {
			m.t.Errorf("file %s: %v", p, err)
			return true
		}
		checks.Range(func(kind string, spec any) bool {
			switch kind {
			case "text":
				m.match("file "+p, spec, string(data), false)
			case "json_fields", "yaml_fields":
				parse := document.ParseJSON
				if kind == "yaml_fields" {
					parse = document.ParseYAML
				}
				v, err := parse(data)
				if err != nil {
					m.t.Errorf("file %s: %v", p, err)
					return true
				}
				spec.(*document.Map).Range(func(fp string, fv any) bool {
					got, ok, _ := document.Lookup(v, fp)
					m.match("file "+p+" "+fp, fv, got, !ok)
					return true
				})
			case "shell_vars":
				spec.(*document.Map).Range(func(name string, fv any) bool {
					out, err := exec.Command("bash", "-c", `set -e; source "$1"; printf %s "${!2}"`, "_", full, name).Output()
					if err != nil {
						m.t.Errorf("sourcing %s: %v", p, err)
						return true
					}
					m.match("file "+p+" $"+name, fv, string(out), false)
					return true
				})
			default:
				m.t.Errorf("file %s: unknown check %s", p, kind)
			}
			return true
		})
		return true
	})
}

func get(m any, k string) any {
	mm, ok := m.(*document.Map)
	if !ok {
		return nil
	}
	v, _ := mm.Get(k)
	return v
}

func strs(v any) []string {
	l, _ := v.([]any)
	out := make([]string, len(l))
	for i, e := range l {
		out[i] = fmt.Sprint(e)
	}
	return out
}

func show(v any) string { return document.MustJSON(v, document.JSONStyle{}) }
