package document

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// ParseYAML decodes one YAML (or JSON) document into document values, keeping
// key order. An empty input (or only comments) yields nil.
//
// It accepts what PyYAML's safe_load accepts: one document. A second document
// ("---" after the first) or content after the end of the first document is
// an error, and so is a mapping key that is a map or a list (PyYAML: "found
// unhashable key"); such a key is never turned into text. Error messages name
// the line, never the input text.
func ParseYAML(data []byte) (any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var n yaml.Node
	if err := dec.Decode(&n); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, fmt.Errorf("malformed YAML: %w", err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, fmt.Errorf("malformed YAML: content after the end of the document: %w", err)
	default:
		return nil, fmt.Errorf("malformed YAML: expected a single document, but found another document at line %d", next.Line)
	}
	if n.Kind == 0 {
		return nil, nil
	}
	var c converter
	return c.fromNode(&n, 0)
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

// converter turns yaml.v3 nodes into document values. It counts the values
// built, and those built again through aliases, to refuse a small text that
// expands to a huge value (the "billion laughs"), with yaml.v3's own limits.
type converter struct {
	built, viaAlias, aliasDepth int
}

func (c *converter) fromNode(n *yaml.Node, depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("malformed YAML: nested deeper than %d levels", maxDepth)
	}
	if err := c.count(1, c.aliasDepth > 0); err != nil {
		return nil, err
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return c.fromNode(n.Content[0], depth+1)
	case yaml.AliasNode:
		c.aliasDepth++
		v, err := c.fromNode(n.Alias, depth+1)
		c.aliasDepth--
		return v, err
	case yaml.MappingNode:
		pairs, err := c.flatten(n, depth)
		if err != nil {
			return nil, err
		}
		m := NewMap()
		for _, p := range pairs {
			if err := checkKey(p.k); err != nil {
				return nil, err
			}
			if p.merged {
				c.aliasDepth++
			}
			k, err := c.fromNode(p.k, depth+1)
			var v any
			if err == nil {
				v, err = c.fromNode(p.v, depth+1)
			}
			if p.merged {
				c.aliasDepth--
			}
			if err != nil {
				return nil, err
			}
			// A repeated key keeps its first place and takes the last value
			// (a Python dict).
			m.Set(keyString(k), v)
		}
		return m, nil
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, e := range n.Content {
			v, err := c.fromNode(e, depth+1)
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

// count adds n values built (through an alias or a merge key if viaAlias)
// and fails when too many came from aliases.
func (c *converter) count(n int, viaAlias bool) error {
	c.built += n
	if viaAlias {
		c.viaAlias += n
	}
	if c.viaAlias > 100 && c.built > 1000 && float64(c.viaAlias)/float64(c.built) > allowedAliasRatio(c.built) {
		return errors.New("malformed YAML: the document contains excessive aliasing")
	}
	return nil
}

// allowedAliasRatio is the share of values that may come from alias
// expansion, as yaml.v3 allows when it decodes into Go values.
func allowedAliasRatio(built int) float64 {
	const low, high = 400000, 4000000
	switch {
	case built <= low:
		return 0.99
	case built >= high:
		return 0.10
	default:
		return 0.99 - 0.89*(float64(built-low)/float64(high-low))
	}
}

// checkKey refuses a mapping key that is a map or a list, as PyYAML does
// ("found unhashable key"): such a key has no text form to store.
func checkKey(k *yaml.Node) error {
	switch k = resolveAlias(k); k.Kind {
	case yaml.MappingNode, yaml.SequenceNode:
		return fmt.Errorf("malformed YAML: line %d, column %d: a mapping key is a %s; keys must be strings, numbers, booleans or null", k.Line, k.Column, nodeKind(k))
	}
	return nil
}

// pair is one key/value of a mapping; merged says it came through a merge
// key ("<<"), which counts as alias expansion.
type pair struct {
	k, v   *yaml.Node
	merged bool
}

// flatten lists the key/value pairs of a mapping with its merge keys ("<<")
// resolved the way PyYAML's flatten_mapping does: the merged pairs come
// first (for a list of maps, the last map's pairs first), then the mapping's
// own pairs, so that when a Python dict is built from them in order, an own
// key wins over a merged one and an earlier merged map over a later one.
func (c *converter) flatten(n *yaml.Node, depth int) ([]pair, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("malformed YAML: nested deeper than %d levels", maxDepth)
	}
	var merged, own []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		if !(kn.Kind == yaml.ScalarNode && kn.Tag == "!!merge") {
			own = append(own, pair{k: kn, v: vn})
			continue
		}
		var maps []*yaml.Node
		switch vn = resolveAlias(vn); vn.Kind {
		case yaml.MappingNode:
			maps = []*yaml.Node{vn}
		case yaml.SequenceNode:
			for _, e := range vn.Content {
				if e = resolveAlias(e); e.Kind != yaml.MappingNode {
					return nil, fmt.Errorf("malformed YAML: line %d: expected a map for merging (<<), found a %s", e.Line, nodeKind(e))
				}
				maps = append(maps, e)
			}
		default:
			return nil, fmt.Errorf("malformed YAML: line %d: expected a map or a list of maps for merging (<<), found a %s", vn.Line, nodeKind(vn))
		}
		for i := len(maps) - 1; i >= 0; i-- {
			sub, err := c.flatten(maps[i], depth+1)
			if err != nil {
				return nil, err
			}
			if err := c.count(len(sub), true); err != nil {
				return nil, err
			}
			for _, p := range sub {
				p.merged = true
				merged = append(merged, p)
			}
		}
	}
	if len(merged) == 0 {
		return own, nil
	}
	return append(merged, own...), nil
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i <= maxDepth; i++ {
		n = n.Alias
	}
	return n
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "map"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "scalar"
	}
	return "node"
}

func scalar(n *yaml.Node) (any, error) {
	if n.Style == 0 {
		return plainScalar(n)
	}
	// Quoted, block and explicitly tagged scalars: yaml.v3 resolved the tag.
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
			// an explicit !!float on digits yaml.v3 resolves as an int (a big
			// int written back by MarshalYAML, or "!!float 12"): a float, as
			// PyYAML reads it
			pf, perr := strconv.ParseFloat(n.Value, 64)
			if perr != nil {
				return nil, err
			}
			f = pf
		}
		return finite(f, n)
	default: // !!str, !!binary, !!timestamp, unknown tags
		return n.Value, nil
	}
}

// PyYAML's implicit resolvers (resolver.py) for the plain scalars that are
// not strings. App configs and file:// values are written for PyYAML, which
// follows YAML 1.1: yes/no/on/off are booleans, 012 is octal, 1:20 is base
// 60, while 1e3, 0o17, 08 and 0X1F are strings (yaml.v3 reads them as
// numbers).
//
// They are hand-written matchers of resolver.py's regexps (quoted above each
// one; resolvers_internal_test.go fuzzes them against the regexps): compiling
// the regexps would cost every run of the CLI, which reads its config.yaml
// first and whose start-up is measured against a Go hello world (README,
// Benchmarks).

// isPyBool: ^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$
func isPyBool(v string) bool {
	switch v {
	case "yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE",
		"false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF":
		return true
	}
	return false
}

// isPyNull: ^(?:~|null|Null|NULL|)$
func isPyNull(v string) bool {
	switch v {
	case "~", "null", "Null", "NULL", "":
		return true
	}
	return false
}

// isPyFloat:
//
//	^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
//	|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
//	|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
//	|[-+]?\.(?:inf|Inf|INF)
//	|\.(?:nan|NaN|NAN))$
func isPyFloat(v string) bool {
	switch v {
	case ".nan", ".NaN", ".NAN":
		return true
	}
	s := trimSign(v)
	switch s {
	case ".inf", ".Inf", ".INF":
		return true
	}
	if strings.HasPrefix(s, ".") { // the second form, unsigned
		return s == v && len(s) > 1 && isDigit(s[1]) && pyExponent(skipDigits(s[2:], true))
	}
	if s == "" || !isDigit(s[0]) {
		return false
	}
	rest := skipDigits(s[1:], true)
	if rest, ok := strings.CutPrefix(rest, "."); ok { // the first form
		return pyExponent(skipDigits(rest, true))
	}
	rest, ok := skipSexagesimal(rest) // the third
	if !ok {
		return false
	}
	rest, ok = strings.CutPrefix(rest, ".")
	return ok && skipDigits(rest, true) == ""
}

// isPyInt:
//
//	^(?:[-+]?0b[0-1_]+
//	|[-+]?0[0-7_]+
//	|[-+]?(?:0|[1-9][0-9_]*)
//	|[-+]?0x[0-9a-fA-F_]+
//	|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$
func isPyInt(v string) bool {
	s := trimSign(v)
	switch {
	case s == "":
		return false
	case strings.HasPrefix(s, "0b"):
		return len(s) > 2 && allOf(s[2:], func(c byte) bool { return c == '0' || c == '1' || c == '_' })
	case strings.HasPrefix(s, "0x"):
		return len(s) > 2 && allOf(s[2:], func(c byte) bool {
			return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' || c == '_'
		})
	case s[0] == '0':
		return s == "0" || allOf(s[1:], func(c byte) bool { return '0' <= c && c <= '7' || c == '_' })
	case !isDigit(s[0]):
		return false
	}
	rest := skipDigits(s[1:], true)
	if rest == "" {
		return true
	}
	rest, ok := skipSexagesimal(rest)
	return ok && rest == ""
}

// trimSign drops one leading '+' or '-'.
func trimSign(v string) string {
	if v != "" && (v[0] == '+' || v[0] == '-') {
		return v[1:]
	}
	return v
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// skipDigits drops the leading [0-9] (and '_' when underscore) of s.
func skipDigits(s string, underscore bool) string {
	i := 0
	for i < len(s) && (isDigit(s[i]) || underscore && s[i] == '_') {
		i++
	}
	return s[i:]
}

func allOf(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

// pyExponent says whether s is empty or an exponent: (?:[eE][-+][0-9]+)?$.
func pyExponent(s string) bool {
	if s == "" {
		return true
	}
	return len(s) > 2 && (s[0] == 'e' || s[0] == 'E') && (s[1] == '-' || s[1] == '+') &&
		skipDigits(s[2:], false) == ""
}

// skipSexagesimal drops (?::[0-5]?[0-9])+ from the start of s: ok is false
// when s does not start with one such group. Two digits after a ':' are one
// group only if the first is 0-5; the regexps' one-digit reading of them
// would leave a digit where they need ':', '.' or the end.
func skipSexagesimal(s string) (rest string, ok bool) {
	for strings.HasPrefix(s, ":") {
		s = s[1:]
		switch {
		case len(s) > 1 && isDigit(s[0]) && isDigit(s[1]):
			if s[0] > '5' {
				return s, false
			}
			s = s[2:]
		case s != "" && isDigit(s[0]):
			s = s[1:]
		default:
			return s, false
		}
		ok = true
	}
	return s, ok
}

// plainScalar reads an untagged plain scalar as PyYAML's SafeLoader does.
// Timestamps stay strings (documents are JSON); NaN and infinities are
// refused for the same reason.
func plainScalar(n *yaml.Node) (any, error) {
	v := n.Value
	switch {
	case isPyBool(v):
		switch v[0] {
		case 'y', 'Y', 't', 'T':
			return true, nil
		case 'o', 'O':
			return v == "on" || v == "On" || v == "ON", nil
		}
		return false, nil
	case isPyFloat(v):
		return pyParseFloat(n)
	case isPyInt(v):
		return pyParseInt(v), nil
	case isPyNull(v):
		return nil, nil
	}
	return v, nil
}

// pyParseInt is PyYAML's construct_yaml_int. A value beyond int64 becomes a
// float64, the closest a JSON document gets to Python's big int.
func pyParseInt(text string) any {
	v := strings.ReplaceAll(text, "_", "")
	neg := v[0] == '-'
	if v[0] == '-' || v[0] == '+' {
		v = v[1:]
	}
	z := new(big.Int)
	ok := true
	switch {
	case v == "0":
	case strings.HasPrefix(v, "0b"):
		_, ok = z.SetString(v[2:], 2)
	case strings.HasPrefix(v, "0x"):
		_, ok = z.SetString(v[2:], 16)
	case v[0] == '0':
		_, ok = z.SetString(v, 8)
	case strings.Contains(v, ":"):
		base := big.NewInt(1)
		parts := strings.Split(v, ":")
		for i := len(parts) - 1; i >= 0; i-- {
			d, _ := new(big.Int).SetString(parts[i], 10)
			z.Add(z, d.Mul(d, base))
			base.Mul(base, big.NewInt(60))
		}
	default:
		_, ok = z.SetString(v, 10)
	}
	if !ok {
		return text // "0b_" and the like: no digits
	}
	if neg {
		z.Neg(z)
	}
	if z.IsInt64() && strconv.IntSize == 64 {
		return int(z.Int64())
	}
	f, _ := new(big.Float).SetInt(z).Float64()
	return f
}

// pyParseFloat is PyYAML's construct_yaml_float.
func pyParseFloat(n *yaml.Node) (any, error) {
	v := strings.ToLower(strings.ReplaceAll(n.Value, "_", ""))
	sign := 1.0
	if v[0] == '-' {
		sign = -1
	}
	if v[0] == '-' || v[0] == '+' {
		v = v[1:]
	}
	var f float64
	switch {
	case v == ".inf":
		f = math.Inf(1)
	case v == ".nan":
		f = math.NaN()
	case strings.Contains(v, ":"):
		parts := strings.Split(v, ":")
		base := 1.0
		for i := len(parts) - 1; i >= 0; i-- {
			d, _ := strconv.ParseFloat(parts[i], 64)
			f += d * base
			base *= 60
		}
	default:
		var err error
		if f, err = strconv.ParseFloat(v, 64); err != nil && !errors.Is(err, strconv.ErrRange) {
			return n.Value, nil
		}
	}
	return finite(sign*f, n)
}

func finite(f float64, n *yaml.Node) (any, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		// documents are stored as JSON, which has no NaN or Infinity
		return nil, fmt.Errorf("malformed YAML: line %d: NaN and infinite numbers are not supported (quote the value for a string)", n.Line)
	}
	return f, nil
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
		if pyResolvers().MatchString(t) {
			// yaml.v3 leaves some of these plain (yes, on, 1:20, <<), which
			// a YAML 1.1 reader (PyYAML, and ParseYAML for yes/no/on/off)
			// would not read back as a string.
			n.Style = yaml.DoubleQuotedStyle
		}
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
