package reconciler

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/history"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/tmpl"
)

// Param names of the CustomRun contract (the README's "Params" and docs/design.md).
const (
	ParamOp           = "op"
	ParamID           = "id"
	ParamCicdContext  = "cicd-context"
	ParamAppConfig    = "app-config"
	ParamAppConfigRef = "app-config-ref"
	ParamBasesRef     = "bases-ref"
	ParamSet          = "set"
	ParamSetYAML      = "set-yaml"
	ParamGet          = "get"
	ParamTmplCtxVar   = "tmpl-ctx-var"
	ParamEvent        = "event"
	ParamGenerator    = "generator"
	ParamTTL          = "ttl"
	// ParamPath and ParamLimit filter op history (docs/history.md).
	ParamPath  = "path"
	ParamLimit = "limit"
)

var stringParams = map[string]bool{
	ParamOp: true, ParamID: true, ParamCicdContext: true, ParamAppConfig: true, ParamAppConfigRef: true,
	ParamBasesRef: true, ParamEvent: true, ParamGenerator: true, ParamTTL: true, ParamPath: true, ParamLimit: true,
}

var arrayParams = map[string]bool{ParamSet: true, ParamSetYAML: true, ParamGet: true, ParamTmplCtxVar: true}

// ResultID is always written; ResultHandled for handle-event.
// ResultChoice and ResultChosenBy carry the decision of an approval gate
// (empty when the event opened none).
const (
	ResultID       = "id"
	ResultHandled  = "handled"
	ResultChoice   = "choice"
	ResultChosenBy = "chosen-by"
	// ResultHistory is op history's result: the entries as a JSON array,
	// newest first (engine.HistoryResultBytes at most).
	ResultHistory = engine.ResultHistory
)

// resultName is what Tekton accepts as a result name.
var resultName = regexp.MustCompile(`^[a-zA-Z0-9][-a-zA-Z0-9_.]*$`)

// params is a validated set of CustomRun params.
type params struct {
	op           engine.Op
	id           string
	cicdContext  string
	appConfig    string
	appConfigRef *configMapKeyRef
	basesRef     string
	sets         []document.Assignment
	// setTexts are the sizes of the texts of the set and set-yaml values,
	// as written (checkBudgets)
	setTexts  []setText
	gets      []getEntry
	vars      []tmpl.Var
	event     *engine.Event
	generator string
	ttl       string
	// op history's filters
	historyPath  string
	historyLimit int
}

// setText is the size of the text of one set or set-yaml value.
type setText struct {
	param string
	item  int
	path  string
	bytes int64
}

type getEntry struct {
	name, expr, format string
}

type configMapKeyRef struct {
	name, key string
}

func invalid(format string, args ...any) error {
	return engine.Errorf(engine.ReasonInvalidParams, format, args...)
}

// parseParams validates the params of a CustomRun. Every problem is a
// permanent InvalidParams error that names the param.
func parseParams(run *v1beta1.CustomRun) (*params, error) {
	byName := map[string]v1beta1.ParamValue{}
	for _, p := range run.Spec.Params {
		switch {
		case stringParams[p.Name]:
			if p.Value.Type == v1beta1.ParamTypeArray || p.Value.Type == v1beta1.ParamTypeObject {
				return nil, invalid("param %q must be a string", p.Name)
			}
		case arrayParams[p.Name]:
			if p.Value.Type == v1beta1.ParamTypeObject {
				return nil, invalid("param %q must be an array of strings", p.Name)
			}
		default:
			return nil, invalid("unknown param %q (known: op, id, cicd-context, app-config, app-config-ref, bases-ref, set, set-yaml, get, tmpl-ctx-var, event, generator, ttl, path, limit)", p.Name)
		}
		byName[p.Name] = p.Value
	}
	str := func(n string) string { return strings.TrimSpace(byName[n].StringVal) }
	list := func(n string) []string {
		v := byName[n]
		if v.Type == v1beta1.ParamTypeString && v.StringVal != "" {
			// a single string is accepted as a one-item array
			return []string{v.StringVal}
		}
		return v.ArrayVal
	}

	if _, ok := byName[ParamOp]; !ok {
		return nil, invalid("param %q is required: one of init, load, set, get, handle-event, generate, history", ParamOp)
	}
	op, err := engine.ParseOp(str(ParamOp))
	if err != nil {
		return nil, err
	}
	p := &params{op: op, id: str(ParamID), cicdContext: str(ParamCicdContext), appConfig: byName[ParamAppConfig].StringVal,
		basesRef: str(ParamBasesRef), generator: str(ParamGenerator), ttl: str(ParamTTL)}
	if p.id == "" {
		return nil, invalid("param %q is required and must not be empty", ParamID)
	}
	if err := p.parseAppConfig(str(ParamAppConfigRef)); err != nil {
		return nil, err
	}
	if p.sets, err = parseSetParams(list(ParamSet), list(ParamSetYAML)); err != nil {
		return nil, err
	}
	p.setTexts = setTexts(list(ParamSet), list(ParamSetYAML))
	if p.gets, err = parseGets(list(ParamGet)); err != nil {
		return nil, err
	}
	if p.vars, err = tmpl.ParseVars(list(ParamTmplCtxVar)); err != nil {
		return nil, invalid("param %q: %v", ParamTmplCtxVar, err)
	}
	if ev := str(ParamEvent); ev != "" {
		if p.event, err = engine.ParseEvent(ev); err != nil {
			return nil, invalid("param %q: %v", ParamEvent, err)
		}
	}
	if err := p.parseHistoryParams(byName, str(ParamPath), str(ParamLimit)); err != nil {
		return nil, err
	}
	return p, p.checkOpNeeds()
}

func (p *params) parseAppConfig(ref string) error {
	if ref == "" {
		return nil
	}
	parts := strings.Split(ref, "/")
	if len(parts) != 3 || parts[0] != "configmap" || parts[1] == "" || parts[2] == "" {
		return invalid("param %q must be configmap/<name>/<key>, got %q", ParamAppConfigRef, ref)
	}
	if p.appConfig != "" {
		return invalid("give either %q or %q, not both", ParamAppConfig, ParamAppConfigRef)
	}
	p.appConfigRef = &configMapKeyRef{name: parts[1], key: parts[2]}
	return nil
}

// parseHistoryParams reads the filters of op history, and refuses them and
// the params of writes with it.
func (p *params) parseHistoryParams(byName map[string]v1beta1.ParamValue, path, limit string) error {
	if p.op != engine.OpHistory {
		for _, n := range []string{ParamPath, ParamLimit} {
			if _, given := byName[n]; given {
				return invalid("param %q is only for op history", n)
			}
		}
		return nil
	}
	for _, n := range []string{ParamSet, ParamSetYAML, ParamTmplCtxVar, ParamEvent, ParamGenerator, ParamAppConfig, ParamAppConfigRef, ParamBasesRef, ParamCicdContext, ParamTTL} {
		if _, given := byName[n]; given {
			return invalid("param %q is not for op history (it takes id, and optionally path and limit)", n)
		}
	}
	p.historyPath = path
	if limit != "" {
		n, err := strconv.Atoi(limit)
		if err != nil || n <= 0 {
			return invalid("param %q: %q is not a positive number of entries", ParamLimit, clip(limit))
		}
		p.historyLimit = n
	}
	return nil
}

func (p *params) checkOpNeeds() error {
	switch p.op {
	case engine.OpInit:
		if p.appConfig == "" && p.appConfigRef == nil {
			return invalid("op init needs param %q (inline YAML) or %q (configmap/<name>/<key>)", ParamAppConfig, ParamAppConfigRef)
		}
	case engine.OpGet:
		if len(p.gets) == 0 {
			return invalid("op get needs param %q: an array of result-name=path", ParamGet)
		}
	case engine.OpHandleEvent:
		if p.event == nil {
			return invalid("op handle-event needs param %q: pipeline=event", ParamEvent)
		}
	case engine.OpGenerate:
		if p.generator == "" {
			return invalid("op generate needs param %q: the path of a generator object", ParamGenerator)
		}
	}
	if p.op != engine.OpGet && len(p.gets) > 0 {
		return invalid("param %q is only for op get", ParamGet)
	}
	return nil
}

// parseSetParams parses `set` (values stored as strings, no '|' splitting)
// then `set-yaml` (values parsed as YAML or JSON).
func parseSetParams(sets, setYAML []string) ([]document.Assignment, error) {
	var out []document.Assignment
	for i, s := range sets {
		a, err := document.ParseAssignment(s, true)
		if err != nil {
			return nil, invalid("param %q item %d: %v", ParamSet, i, err)
		}
		out = append(out, a)
	}
	for i, s := range setYAML {
		a, err := document.ParseAssignment(s, true)
		if err != nil {
			return nil, invalid("param %q item %d: %v", ParamSetYAML, i, err)
		}
		v, err := parseYAMLOrJSON([]byte(a.Value.(string)))
		if err != nil {
			return nil, invalid("param %q item %d (%s): %v", ParamSetYAML, i, a.Path, err)
		}
		a.Value = v
		out = append(out, a)
	}
	return out, nil
}

// setTexts lists the sizes of the value texts of set and set-yaml items
// that parseSetParams accepted.
func setTexts(sets, setYAML []string) []setText {
	var out []setText
	add := func(param string, items []string) {
		for i, s := range items {
			if a, err := document.ParseAssignment(s, true); err == nil {
				out = append(out, setText{param: param, item: i, path: a.Path, bytes: int64(len(a.Value.(string)))})
			}
		}
	}
	add(ParamSet, sets)
	add(ParamSetYAML, setYAML)
	return out
}

// checkBudgets checks the params against the budgets of the configuration
// (docs/security.md, "Budgets") before anything is read or parsed further:
// the text of every set and set-yaml value (budgets.valueBytes,
// InvalidParams) and an inline app-config (budgets.appConfigBytes,
// InvalidAppConfig). The engine checks the same again (engine.CheckBudgets).
// Errors name the param, the item, the path and the limit, never the value.
func (p *params) checkBudgets(b config.Budgets) error {
	if n := int64(len(p.appConfig)); n > b.AppConfigBytes {
		return engine.AppConfigTooLarge(fmt.Sprintf("param %q", ParamAppConfig), n, b.AppConfigBytes)
	}
	for _, t := range p.setTexts {
		if t.bytes > b.ValueBytes {
			return engine.ValueTooLarge(fmt.Sprintf("param %q item %d (%s)", t.param, t.item, clip(t.path)), t.bytes, b.ValueBytes)
		}
	}
	return nil
}

func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}

// parseGets parses `result-name=path` entries; `result-name:csv=path` joins
// a list with commas instead of printing it as JSON.
func parseGets(items []string) ([]getEntry, error) {
	seen := map[string]bool{ResultID: true, ResultHandled: true, ResultChoice: true, ResultChosenBy: true}
	var out []getEntry
	for i, it := range items {
		name, expr, ok := strings.Cut(it, "=")
		name, expr = strings.TrimSpace(name), strings.TrimSpace(expr)
		if !ok || name == "" || expr == "" {
			return nil, invalid("param %q item %d: %q is not of the form result-name=path", ParamGet, i, it)
		}
		format := ""
		if n, f, has := strings.Cut(name, ":"); has {
			name, format = n, f
			if format != "csv" && format != "json" {
				return nil, invalid("param %q item %d: unknown format %q (use csv or json)", ParamGet, i, format)
			}
		}
		if !resultName.MatchString(name) {
			return nil, invalid("param %q item %d: %q is not a valid result name", ParamGet, i, name)
		}
		if seen[name] {
			return nil, invalid("param %q item %d: result %q is given twice (or is the reserved result %q)", ParamGet, i, name, ResultID)
		}
		seen[name] = true
		out = append(out, getEntry{name: name, expr: expr, format: format})
	}
	return out, nil
}

func (g getEntry) String() string { return fmt.Sprintf("%s=%s", g.name, g.expr) }

// lenientParams is what can be read of params that did not validate: the
// id, the get result names, the event and op history, so that a failed run
// still writes every result a pipeline may reference.
func lenientParams(run *v1beta1.CustomRun) *params {
	if p, err := parseParams(run); err == nil {
		return p
	}
	p := &params{}
	for _, prm := range run.Spec.Params {
		switch prm.Name {
		case ParamID:
			p.id = strings.TrimSpace(prm.Value.StringVal)
		case ParamEvent:
			p.event = &engine.Event{}
		case ParamOp:
			if strings.TrimSpace(prm.Value.StringVal) == string(engine.OpHistory) {
				p.op = engine.OpHistory // its result is written too
			}
		case ParamGet:
			for _, it := range prm.Value.ArrayVal {
				name, _, _ := strings.Cut(it, "=")
				name, _, _ = strings.Cut(strings.TrimSpace(name), ":")
				if resultName.MatchString(name) && name != ResultID {
					p.gets = append(p.gets, getEntry{name: name})
				}
			}
		}
	}
	return p
}

// context names the context the id param means for a CustomRun of namespace
// runNS: "<id>" is runNS's own context, "<namespace>/<id>" one of another
// namespace (visible only when its owner shares it).
func (p *params) context(runNS string) (namespace, id string) {
	if ns, rest, ok := strings.Cut(p.id, "/"); ok {
		return ns, rest
	}
	return runNS, p.id
}

// parseYAMLOrJSON reads a set-yaml value as the CLI reads a file:// value:
// JSON when it is JSON (so {"n": 1e3} is a number, as JSON says), else YAML.
func parseYAMLOrJSON(text []byte) (any, error) {
	if v, err := document.ParseJSON(text); err == nil {
		return v, nil
	}
	return document.ParseYAML(text)
}

// whoOf is who a CustomRun's writes are recorded as in a context's history:
// its namespace and name (the API server's), its PipelineRun (its owner, else
// its label) and pipeline task (its label, set by Tekton; whoever may create
// CustomRuns in the namespace may set it too).
func whoOf(run *v1beta1.CustomRun) history.Who {
	a := askingRun(run)
	return history.Who{Namespace: a.Namespace, CustomRun: a.CustomRun, PipelineRun: clip(a.PipelineRun), PipelineTask: clip(a.PipelineTask)}
}
