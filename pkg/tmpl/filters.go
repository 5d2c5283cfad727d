package tmpl

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/flosch/pongo2/v6"
)

// The custom filters of the original's jinja2 environment, plus jinja2's
// tojson and an `items` filter for ordered iteration. pongo2 filters are
// global and take at most one argument (`value|name:arg`).
var customFilters = map[string]pongo2.FilterFunction{
	"json_dumps":             filterJSONDumps,
	"from_json":              filterFromJSON,
	"to_nice_yaml":           filterToNiceYAML,
	"kv_comma_pairs_to_json": filterKVCommaPairsToJSON,
	"to_base64":              filterToBase64,
	"tojson":                 filterToJSON,
	"items":                  filterItems,
}

func init() {
	for name, fn := range customFilters {
		if pongo2.FilterExists(name) {
			if err := pongo2.ReplaceFilter(name, fn); err != nil {
				panic(err)
			}
			continue
		}
		if err := pongo2.RegisterFilter(name, fn); err != nil {
			panic(err)
		}
	}
}

// filterError is a filter's failure. Its message names the filter and the
// problem, never the value or the argument: a template may filter a secret
// or text a pipeline author planted, and the message reaches CustomRun
// statuses, events and logs.
func filterError(name string, err error) *pongo2.Error {
	return &pongo2.Error{Sender: "filter:" + name, OrigError: fmt.Errorf("%s: %w", name, err)}
}

// errValue is the failure of converting a value, without the value.
func errValue(what string, v any) error {
	return fmt.Errorf("the value (a %s) is not serializable %s", typeName(v), what)
}

// jsonDumpsArgs reads the json_dumps argument: none = compact; an integer N =
// indent N; a string of comma-separated options "strip" and "indent=N" (a
// bare number is an indent too).
func jsonDumpsArgs(param *pongo2.Value) (indent int, strip bool, err error) {
	switch {
	case param == nil || param.IsNil():
		return 0, false, nil
	case param.IsInteger():
		return param.Integer(), false, nil
	case param.IsString():
		for _, opt := range strings.Split(param.String(), ",") {
			opt = strings.TrimSpace(opt)
			name, val, hasVal := strings.Cut(opt, "=")
			name = strings.TrimSpace(name)
			switch {
			case opt == "":
			case name == "strip" && !hasVal:
				strip = true
			case name == "indent" && hasVal:
				if indent, err = strconv.Atoi(strings.TrimSpace(val)); err != nil {
					return 0, false, fmt.Errorf("bad indent: the indent option is not a number")
				}
			case !hasVal && isDigits(opt):
				indent, _ = strconv.Atoi(opt)
			default:
				return 0, false, fmt.Errorf("unknown option in the argument (use \"strip\", \"indent=N\" or both: \"strip,indent=2\")")
			}
		}
		return indent, strip, nil
	default:
		return 0, false, fmt.Errorf("argument must be an integer indent or a string of options, not %s", typeName(param.Interface()))
	}
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// filterJSONDumps is Python's json.dumps(value, indent=N): ", " and ": "
// separators, non-ASCII escaped, key order kept; "strip" drops the first and
// last character (the quotes around a JSON string).
func filterJSONDumps(in, param *pongo2.Value) (*pongo2.Value, *pongo2.Error) {
	indent, strip, err := jsonDumpsArgs(param)
	if err != nil {
		return nil, filterError("json_dumps", err)
	}
	out, err := marshalJSON(in, document.JSONStyle{Python: true, ASCII: true, Indent: indent})
	if err != nil {
		return nil, filterError("json_dumps", errValue("as JSON", in.Interface()))
	}
	if strip {
		if len(out) < 2 {
			out = ""
		} else {
			out = out[1 : len(out)-1] // ASCII only: ensure_ascii escaped the rest
		}
	}
	return pongo2.AsValue(out), nil
}

// filterToJSON is jinja2's tojson: json.dumps(value, sort_keys=True) with
// < > & ' escaped as \u003c \u003e \u0026 \u0027; an integer argument indents.
func filterToJSON(in, param *pongo2.Value) (*pongo2.Value, *pongo2.Error) {
	indent := 0
	if param != nil && !param.IsNil() {
		if !param.IsInteger() {
			return nil, filterError("tojson", fmt.Errorf("argument must be an integer indent, not %s", typeName(param.Interface())))
		}
		indent = param.Integer()
	}
	out, err := marshalJSON(in, document.JSONStyle{Python: true, ASCII: true, SortKeys: true, HTMLSafe: true, Indent: indent})
	if err != nil {
		return nil, filterError("tojson", errValue("as JSON", in.Interface()))
	}
	return pongo2.AsSafeValue(out), nil
}

func marshalJSON(in *pongo2.Value, style document.JSONStyle) (string, error) {
	v, err := toDocument(in.Interface())
	if err != nil {
		return "", err
	}
	b, err := document.MarshalJSON(v, style)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// filterFromJSON parses JSON text (json.loads) into a value whose maps keep
// the text's key order.
func filterFromJSON(in, _ *pongo2.Value) (*pongo2.Value, *pongo2.Error) {
	s, ok := in.Interface().(string)
	if !ok {
		return nil, filterError("from_json", fmt.Errorf("expected a JSON string, got %s", typeName(in.Interface())))
	}
	v, err := document.ParseJSON([]byte(s))
	if err != nil {
		return nil, filterError("from_json", fmt.Errorf("malformed JSON in the value"))
	}
	return pongo2.AsValue(v), nil
}

// filterToNiceYAML is PyYAML's yaml.dump(value, default_flow_style=False,
// sort_keys=False, indent=N), as document.MarshalPyYAML writes it: block
// style, key order kept, lists flush under their key; the indent is 2 unless
// the argument is an integer from 2 to 9.
func filterToNiceYAML(in, param *pongo2.Value) (*pongo2.Value, *pongo2.Error) {
	indent := 2
	if param != nil && !param.IsNil() {
		if !param.IsInteger() {
			return nil, filterError("to_nice_yaml", fmt.Errorf("argument must be an integer indent, not %s", typeName(param.Interface())))
		}
		indent = param.Integer() // PyYAML (and MarshalPyYAML) use 2 outside 2..9
	}
	v, err := toDocument(in.Interface())
	if err != nil {
		return nil, filterError("to_nice_yaml", errValue("as YAML", in.Interface()))
	}
	out, err := document.MarshalPyYAML(v, indent)
	if err != nil {
		return nil, filterError("to_nice_yaml", errValue("as YAML", in.Interface()))
	}
	return pongo2.AsValue(string(out)), nil
}

// filterKVCommaPairsToJSON turns "a=1,b=2,c" into {"a": "1", "b": "2"}: pairs
// without "=" are dropped, "a=b=c" gives "a": "b", a repeated key keeps its
// first place and its last value (the original's Python dict).
func filterKVCommaPairsToJSON(in, _ *pongo2.Value) (*pongo2.Value, *pongo2.Error) {
	m := document.NewMap()
	for _, pair := range strings.Split(in.String(), ",") {
		if !strings.Contains(pair, "=") {
			continue
		}
		parts := strings.Split(pair, "=")
		m.Set(parts[0], parts[1])
	}
	out, err := document.MarshalJSON(m, document.PythonJSON)
	if err != nil {
		return nil, filterError("kv_comma_pairs_to_json", fmt.Errorf("the pairs cannot be written as JSON"))
	}
	return pongo2.AsValue(string(out)), nil
}

// filterToBase64 is the standard base64 of the value's UTF-8 text.
func filterToBase64(in, _ *pongo2.Value) (*pongo2.Value, *pongo2.Error) {
	return pongo2.AsValue(base64.StdEncoding.EncodeToString([]byte(in.String()))), nil
}

// filterItems lists a map's entries as [key, value] pairs in document order
// (sorted by key for maps with no order): {% for p in m|items %}
// {{ p.0 }}={{ p.1 }}{% endfor %}. Null gives an empty list.
func filterItems(in, _ *pongo2.Value) (*pongo2.Value, *pongo2.Error) {
	var out []any
	switch t := in.Interface().(type) {
	case nil:
		out = []any{}
	case map[string]any:
		keys := sortedKeys(t)
		out = make([]any, 0, len(keys))
		for _, k := range keys {
			out = append(out, []any{k, t[k]})
		}
	case *document.Map:
		out = make([]any, 0, t.Len())
		t.Range(func(k string, v any) bool {
			out = append(out, []any{k, v})
			return true
		})
	default:
		d, err := toDocument(t)
		m, ok := d.(*document.Map)
		if err != nil || !ok {
			return nil, filterError("items", fmt.Errorf("expected a map, got %s", typeName(t)))
		}
		return filterItems(pongo2.AsValue(m), nil)
	}
	return pongo2.AsValue(out), nil
}

// typeName names a template value's type for error messages.
func typeName(v any) string {
	switch t := v.(type) {
	case map[string]any:
		return "map"
	case *pongo2.Value:
		return typeName(t.Interface())
	case []any:
		return "list"
	}
	return document.TypeName(v)
}
