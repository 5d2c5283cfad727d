package document

import (
	"bytes"
	"fmt"
	"math"
	"strconv"

	"gopkg.in/yaml.v3"
)

// ParseYAML decodes one YAML (or JSON) document into document values, keeping
// key order. An empty input yields nil.
func ParseYAML(data []byte) (any, error) {
	var n yaml.Node
	if err := yaml.Unmarshal(data, &n); err != nil {
		return nil, fmt.Errorf("malformed YAML: %w", err)
	}
	if n.Kind == 0 {
		return nil, nil
	}
	return fromNode(&n, 0)
}

// ParseYAMLMap is ParseYAML for inputs that must be a map (nil for empty input).
func ParseYAMLMap(data []byte) (*Map, error) {
	v, err := ParseYAML(data)
	if err != nil {
		return nil, err
	}
	switch t := v.(type) {
	case nil:
		return NewMap(), nil
	case *Map:
		return t, nil
	default:
		return nil, fmt.Errorf("malformed YAML: expected a map at the top level, got %s", TypeName(v))
	}
}

const maxDepth = 1000

func fromNode(n *yaml.Node, depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("malformed YAML: nested deeper than %d levels", maxDepth)
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return fromNode(n.Content[0], depth+1)
	case yaml.AliasNode:
		return fromNode(n.Alias, depth+1)
	case yaml.MappingNode:
		m := NewMap()
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], n.Content[i+1]
			if kn.Kind == yaml.ScalarNode && kn.Tag == "!!merge" {
				merged, err := fromNode(vn, depth+1)
				if err != nil {
					return nil, err
				}
				if mm, ok := merged.(*Map); ok {
					mm.Range(func(k string, v any) bool {
						if !m.Has(k) {
							m.Set(k, v)
						}
						return true
					})
				}
				continue
			}
			k, err := fromNode(kn, depth+1)
			if err != nil {
				return nil, err
			}
			v, err := fromNode(vn, depth+1)
			if err != nil {
				return nil, err
			}
			m.Set(keyString(k), v)
		}
		return m, nil
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := fromNode(c, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.ScalarNode:
		return scalar(n)
	}
	return nil, fmt.Errorf("malformed YAML: unsupported node at line %d", n.Line)
}

// yaml11Bools are the plain scalars PyYAML (YAML 1.1) reads as booleans and
// yaml.v3 (YAML 1.2) reads as strings; app configs are written for PyYAML.
var yaml11Bools = map[string]bool{
	"yes": true, "Yes": true, "YES": true, "on": true, "On": true, "ON": true,
	"no": false, "No": false, "NO": false, "off": false, "Off": false, "OFF": false,
}

func scalar(n *yaml.Node) (any, error) {
	if n.Style == 0 && n.Tag == "!!str" {
		if b, ok := yaml11Bools[n.Value]; ok {
			return b, nil
		}
	}
	switch n.Tag {
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, err
		}
		return b, nil
	case "!!int":
		var i int
		if err := n.Decode(&i); err != nil {
			// too big for int: keep the digits as a float like PyYAML keeps a big int
			f, ferr := strconv.ParseFloat(n.Value, 64)
			if ferr != nil {
				return n.Value, nil
			}
			return f, nil
		}
		return i, nil
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			return nil, err
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			// documents are stored as JSON, which has no NaN or Infinity
			return nil, fmt.Errorf("malformed YAML: %s at line %d: NaN and infinite numbers are not supported (quote it for a string)", n.Value, n.Line)
		}
		return f, nil
	case "!!binary", "!!timestamp":
		return n.Value, nil
	default:
		return n.Value, nil
	}
}

func keyString(k any) string {
	switch t := k.(type) {
	case string:
		return t
	case nil:
		return "null"
	case bool:
		if t {
			return "true"
		}
		return "false"
	case float64:
		return formatFloat(t)
	default:
		return fmt.Sprint(t)
	}
}

// MarshalYAML renders a document value as block-style YAML in key order.
func MarshalYAML(v any) ([]byte, error) {
	n := toNode(v)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func toNode(v any) *yaml.Node {
	switch t := v.(type) {
	case *Map:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		t.Range(func(k string, vv any) bool {
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, toNode(vv))
			return true
		})
		return n
	case []any:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, e := range t {
			n.Content = append(n.Content, toNode(e))
		}
		return n
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(t)}
	case int:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(t)}
	case float64:
		s := formatFloat(t)
		if math.IsInf(t, 0) || math.IsNaN(t) {
			s = map[bool]string{true: ".inf", false: "-.inf"}[t > 0]
			if math.IsNaN(t) {
				s = ".nan"
			}
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: s}
	case string:
		n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: t}
		return n
	default:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: fmt.Sprint(t)}
	}
}

// TypeName names a value's type the way error messages talk to users.
func TypeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case int, int64, float64:
		return "number"
	case string:
		return "string"
	case []any:
		return "list"
	case *Map:
		return "map"
	default:
		return fmt.Sprintf("%T", v)
	}
}
