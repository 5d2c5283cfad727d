package document

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// MarshalPyYAML renders a document value the way PyYAML's
//
//	yaml.dump(value, default_flow_style=False, sort_keys=False, indent=indent)
//
// does, which is what the original's to_nice_yaml template filter prints:
//   - block style; only empty lists and maps are written in flow style ([] {});
//   - a list that is the value of a map key is not indented relative to the
//     key ("k:\n- 1"); a list item that is a list or a map starts on the line
//     of its "-", whose content is indented by indent columns ("-   a: 1"
//     with indent 4);
//   - a string is written plain unless plain text would read back as another
//     type (true, 123, 1.5, null, 2020-01-01, ...) or holds characters plain
//     text cannot; then single-quoted, or double-quoted with escapes when it
//     has characters outside printable ASCII (allow_unicode is off);
//   - plain and quoted strings are folded at spaces past column 80;
//   - floats as Python's repr (1.0, 1.0e+16); a lone plain scalar at the top
//     is followed by the document end marker "...".
//
// indent is used when it is 2 to 9, else 2, as PyYAML does. Key order is
// kept. Values are those of a document (nil, bool, int, float64, string,
// []any, *Map); anything else is an error.
func MarshalPyYAML(v any, indent int) ([]byte, error) {
	e := pyEmitter{bestIndent: 2, bestWidth: 80, indent: -1, whitespace: true, indention: true}
	if indent > 1 && indent < 10 {
		e.bestIndent = indent
	}
	if err := e.node(v, true, false, false, false, 0); err != nil {
		return nil, err
	}
	// document end, then stream end
	e.writeIndent()
	if e.openEnded {
		e.writeIndicator("...", true, false, false)
		e.writeIndent()
	}
	return []byte(e.out.String()), nil
}

// pyEmitter is the state of PyYAML's Emitter (emitter.py) that block-style
// output needs. indent -1 stands for Python's None.
type pyEmitter struct {
	out        strings.Builder
	bestIndent int
	bestWidth  int
	indent     int
	indents    []int
	flowLevel  int
	column     int
	whitespace bool // the last character written is white space
	indention  bool // the last characters written are indentation ("  - ")
	openEnded  bool
}

func (e *pyEmitter) increaseIndent(flow, indentless bool) {
	e.indents = append(e.indents, e.indent)
	switch {
	case e.indent < 0 && flow:
		e.indent = e.bestIndent
	case e.indent < 0:
		e.indent = 0
	case !indentless:
		e.indent += e.bestIndent
	}
}

func (e *pyEmitter) popIndent() {
	e.indent = e.indents[len(e.indents)-1]
	e.indents = e.indents[:len(e.indents)-1]
}

// node is PyYAML's expect_node with its contexts.
func (e *pyEmitter) node(v any, root, sequence, mapping, simpleKey bool, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("value nested deeper than %d levels", maxDepth)
	}
	switch t := v.(type) {
	case []any:
		if e.flowLevel > 0 || len(t) == 0 {
			e.emptyFlow("[", "]")
			return nil
		}
		e.increaseIndent(false, mapping && !e.indention)
		for _, item := range t {
			e.writeIndent()
			e.writeIndicator("-", true, false, true)
			if err := e.node(item, false, true, false, false, depth+1); err != nil {
				return err
			}
		}
		e.popIndent()
		return nil
	case *Map:
		if e.flowLevel > 0 || t.Len() == 0 {
			e.emptyFlow("{", "}")
			return nil
		}
		e.increaseIndent(false, false)
		for _, k := range t.keys {
			e.writeIndent()
			if simpleKeyOK(k) {
				e.scalar(k, true, false, true)
				e.writeIndicator(":", false, false, false)
			} else {
				e.writeIndicator("?", true, false, true)
				e.scalar(k, true, false, false)
				e.writeIndent()
				e.writeIndicator(":", true, false, true)
			}
			if err := e.node(t.vals[k], false, false, true, false, depth+1); err != nil {
				return err
			}
		}
		e.popIndent()
		return nil
	case string:
		e.scalar(t, true, root, simpleKey)
		return nil
	}
	text, err := pyScalarText(v)
	if err != nil {
		return err
	}
	e.scalar(text, false, root, simpleKey)
	return nil
}

// emptyFlow writes an empty flow collection ([] or {}).
func (e *pyEmitter) emptyFlow(open, close string) {
	e.writeIndicator(open, true, true, false)
	e.flowLevel++
	e.increaseIndent(true, false)
	e.popIndent()
	e.flowLevel--
	e.writeIndicator(close, false, false, false)
}

// pyScalarText is how PyYAML's representer writes a non-string scalar.
func pyScalarText(v any) (string, error) {
	switch t := v.(type) {
	case nil:
		return "null", nil
	case bool:
		if t {
			return "true", nil
		}
		return "false", nil
	case int:
		return strconv.Itoa(t), nil
	case int64:
		return strconv.FormatInt(t, 10), nil
	case uint64:
		return strconv.FormatUint(t, 10), nil
	case float64:
		return pyFloat(t), nil
	}
	return "", fmt.Errorf("cannot write a %T as YAML", v)
}

// pyFloat is PyYAML's represent_float: Python's repr, lower case, with ".0"
// added to a mantissa without a dot (1e+16 -> 1.0e+16).
func pyFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return ".nan"
	case math.IsInf(f, 1):
		return ".inf"
	case math.IsInf(f, -1):
		return "-.inf"
	}
	// repr uses the shortest digits that read back, in exponent form when
	// the decimal exponent is below -4 or 16 and above.
	sci := strconv.FormatFloat(f, 'e', -1, 64)
	mant, exp, _ := strings.Cut(sci, "e")
	x, _ := strconv.Atoi(exp)
	if x >= -4 && x < 16 {
		s := strconv.FormatFloat(f, 'f', -1, 64)
		if !strings.Contains(s, ".") {
			s += ".0"
		}
		return s
	}
	if !strings.Contains(mant, ".") {
		mant += ".0"
	}
	sign := "+"
	if x < 0 {
		sign, x = "-", -x
	}
	return fmt.Sprintf("%se%s%02d", mant, sign, x)
}

// simpleKeyOK is PyYAML's check_simple_key for a string key: not empty, one
// line, and shorter than 128 characters counting the "!!str" tag PyYAML
// includes in the length.
func simpleKeyOK(k string) bool {
	a := analyzeScalar([]rune(k))
	return !a.empty && !a.multiline && len(a.text)+len("!!str") < 128
}

// pyResolvers are PyYAML's implicit resolvers (resolver.py): a plain scalar
// matching one of them reads back as a bool, float, int, merge, null,
// timestamp, value or yaml tag instead of a string (the empty string reads
// back as null). Python's "$" also matches before a final newline. Compiled at
// its first use (only writing YAML needs it).
var pyResolvers = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(?:` +
		`yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF` +
		`|[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?` +
		`|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?` +
		`|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*` +
		`|[-+]?\.(?:inf|Inf|INF)` +
		`|\.(?:nan|NaN|NAN)` +
		`|[-+]?0b[0-1_]+` +
		`|[-+]?0[0-7_]+` +
		`|[-+]?(?:0|[1-9][0-9_]*)` +
		`|[-+]?0x[0-9a-fA-F_]+` +
		`|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+` +
		`|<<` +
		`|~|null|Null|NULL` +
		`|[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]` +
		`|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?` +
		`|=` +
		`|!|&|\*` +
		`)\n?$`)
})

type scalarAnalysis struct {
	text                            []rune
	empty, multiline                bool
	allowFlowPlain, allowBlockPlain bool
	allowSingleQuoted, allowBlock   bool
}

func isBreak(r rune) bool { return r == '\n' || r == '\u0085' || r == '\u2028' || r == '\u2029' }

func isSpaceOrBreak(r rune) bool {
	return r == 0 || r == ' ' || r == '\t' || r == '\r' || isBreak(r)
}

// analyzeScalar is PyYAML's analyze_scalar with allow_unicode off.
func analyzeScalar(text []rune) scalarAnalysis {
	if len(text) == 0 {
		return scalarAnalysis{text: text, empty: true, allowBlockPlain: true, allowSingleQuoted: true}
	}
	var blockIndicators, flowIndicators, lineBreaks, special bool
	var leadingSpace, leadingBreak, trailingSpace, trailingBreak, breakSpace, spaceBreak bool
	s := string(text)
	if strings.HasPrefix(s, "---") || strings.HasPrefix(s, "...") {
		blockIndicators, flowIndicators = true, true
	}
	precededByWS := true
	followedByWS := len(text) == 1 || isSpaceOrBreak(text[1])
	previousSpace, previousBreak := false, false
	for i, ch := range text {
		if i == 0 {
			if strings.ContainsRune("#,[]{}&*!|>'\"%@`", ch) {
				flowIndicators, blockIndicators = true, true
			}
			if ch == '?' || ch == ':' {
				flowIndicators = true
				if followedByWS {
					blockIndicators = true
				}
			}
			if ch == '-' && followedByWS {
				flowIndicators, blockIndicators = true, true
			}
		} else {
			if strings.ContainsRune(",?[]{}", ch) {
				flowIndicators = true
			}
			if ch == ':' {
				flowIndicators = true
				if followedByWS {
					blockIndicators = true
				}
			}
			if ch == '#' && precededByWS {
				flowIndicators, blockIndicators = true, true
			}
		}
		if isBreak(ch) {
			lineBreaks = true
		}
		if !(ch == '\n' || (ch >= 0x20 && ch <= 0x7e)) {
			// Printable non-ASCII is "special" too: allow_unicode is off.
			special = true
		}
		switch {
		case ch == ' ':
			if i == 0 {
				leadingSpace = true
			}
			if i == len(text)-1 {
				trailingSpace = true
			}
			if previousBreak {
				breakSpace = true
			}
			previousSpace, previousBreak = true, false
		case isBreak(ch):
			if i == 0 {
				leadingBreak = true
			}
			if i == len(text)-1 {
				trailingBreak = true
			}
			if previousSpace {
				spaceBreak = true
			}
			previousSpace, previousBreak = false, true
		default:
			previousSpace, previousBreak = false, false
		}
		precededByWS = isSpaceOrBreak(ch)
		followedByWS = i+2 >= len(text) || isSpaceOrBreak(text[i+2])
	}
	a := scalarAnalysis{text: text, multiline: lineBreaks,
		allowFlowPlain: true, allowBlockPlain: true, allowSingleQuoted: true, allowBlock: true}
	if leadingSpace || leadingBreak || trailingSpace || trailingBreak {
		a.allowFlowPlain, a.allowBlockPlain = false, false
	}
	if trailingSpace {
		a.allowBlock = false
	}
	if breakSpace {
		a.allowFlowPlain, a.allowBlockPlain, a.allowSingleQuoted = false, false, false
	}
	if spaceBreak || special {
		a.allowFlowPlain, a.allowBlockPlain, a.allowSingleQuoted, a.allowBlock = false, false, false, false
	}
	if lineBreaks {
		a.allowFlowPlain, a.allowBlockPlain = false, false
	}
	if flowIndicators {
		a.allowFlowPlain = false
	}
	if blockIndicators {
		a.allowBlockPlain = false
	}
	return a
}

// scalar is PyYAML's expect_scalar: choose_scalar_style and process_scalar.
// isString says the value is a string, which may be written plain only if
// plain text would read back as a string.
func (e *pyEmitter) scalar(text string, isString, root, simpleKey bool) {
	e.increaseIndent(true, false)
	defer e.popIndent()
	a := analyzeScalar([]rune(text))
	implicitPlain := !isString || (text != "" && !pyResolvers().MatchString(text))
	split := !simpleKey
	if implicitPlain && !(simpleKey && (a.empty || a.multiline)) &&
		((e.flowLevel > 0 && a.allowFlowPlain) || (e.flowLevel == 0 && a.allowBlockPlain)) {
		e.writePlain(a.text, split, root)
		return
	}
	if a.allowSingleQuoted && !(simpleKey && a.multiline) {
		e.writeSingleQuoted(a.text, split)
		return
	}
	e.writeDoubleQuoted(a.text, split)
}

func (e *pyEmitter) write(s string) {
	e.out.WriteString(s)
}

func (e *pyEmitter) writeRunes(r []rune) {
	e.column += len(r)
	e.out.WriteString(string(r))
}

func (e *pyEmitter) writeIndicator(indicator string, needWhitespace, whitespace, indention bool) {
	data := indicator
	if !e.whitespace && needWhitespace {
		data = " " + indicator
	}
	e.whitespace = whitespace
	e.indention = e.indention && indention
	e.column += len(data)
	e.openEnded = false
	e.write(data)
}

func (e *pyEmitter) writeIndent() {
	indent := max(e.indent, 0)
	if !e.indention || e.column > indent || (e.column == indent && !e.whitespace) {
		e.writeLineBreak(0)
	}
	if e.column < indent {
		e.whitespace = true
		e.write(strings.Repeat(" ", indent-e.column))
		e.column = indent
	}
}

// writeLineBreak writes br, or "\n" for 0.
func (e *pyEmitter) writeLineBreak(br rune) {
	if br == 0 {
		br = '\n'
	}
	e.whitespace = true
	e.indention = true
	e.column = 0
	e.write(string(br))
}

func (e *pyEmitter) writeBreaks(text []rune) {
	for _, br := range text {
		e.writeLineBreak(br)
	}
}

func (e *pyEmitter) writePlain(text []rune, split, root bool) {
	if root {
		e.openEnded = true
	}
	if len(text) == 0 {
		return
	}
	if !e.whitespace {
		e.column++
		e.write(" ")
	}
	e.whitespace = false
	e.indention = false
	spaces, breaks := false, false
	start := 0
	for end := 0; end <= len(text); end++ {
		var ch rune = -1
		if end < len(text) {
			ch = text[end]
		}
		switch {
		case spaces:
			if ch != ' ' {
				if start+1 == end && e.column > e.bestWidth && split {
					e.writeIndent()
					e.whitespace = false
					e.indention = false
				} else {
					e.writeRunes(text[start:end])
				}
				start = end
			}
		case breaks:
			if !isBreak(ch) {
				if text[start] == '\n' {
					e.writeLineBreak(0)
				}
				e.writeBreaks(text[start:end])
				e.writeIndent()
				e.whitespace = false
				e.indention = false
				start = end
			}
		default:
			if ch == -1 || ch == ' ' || isBreak(ch) {
				e.writeRunes(text[start:end])
				start = end
			}
		}
		if ch != -1 {
			spaces = ch == ' '
			breaks = isBreak(ch)
		}
	}
}

func (e *pyEmitter) writeSingleQuoted(text []rune, split bool) {
	e.writeIndicator("'", true, false, false)
	spaces, breaks := false, false
	start := 0
	for end := 0; end <= len(text); end++ {
		var ch rune = -1
		if end < len(text) {
			ch = text[end]
		}
		switch {
		case spaces:
			if ch == -1 || ch != ' ' {
				if start+1 == end && e.column > e.bestWidth && split && start != 0 && end != len(text) {
					e.writeIndent()
				} else {
					e.writeRunes(text[start:end])
				}
				start = end
			}
		case breaks:
			if ch == -1 || !isBreak(ch) {
				if text[start] == '\n' {
					e.writeLineBreak(0)
				}
				e.writeBreaks(text[start:end])
				e.writeIndent()
				start = end
			}
		default:
			if ch == -1 || ch == ' ' || isBreak(ch) || ch == '\'' {
				if start < end {
					e.writeRunes(text[start:end])
					start = end
				}
			}
		}
		if ch == '\'' {
			e.column += 2
			e.write("''")
			start = end + 1
		}
		if ch != -1 {
			spaces = ch == ' '
			breaks = isBreak(ch)
		}
	}
	e.writeIndicator("'", false, false, false)
}

var pyEscapes = map[rune]string{
	0: "0", '\a': "a", '\b': "b", '\t': "t", '\n': "n", '\v': "v", '\f': "f", '\r': "r", 0x1b: "e",
	'"': "\"", '\\': "\\", 0x85: "N", 0xa0: "_", 0x2028: "L", 0x2029: "P",
}

func (e *pyEmitter) writeDoubleQuoted(text []rune, split bool) {
	e.writeIndicator("\"", true, false, false)
	start := 0
	for end := 0; end <= len(text); end++ {
		var ch rune = -1
		if end < len(text) {
			ch = text[end]
		}
		if ch == -1 || ch == '"' || ch == '\\' || ch == 0x85 || ch == 0x2028 || ch == 0x2029 || ch == 0xfeff ||
			!(ch >= 0x20 && ch <= 0x7e) {
			if start < end {
				e.writeRunes(text[start:end])
				start = end
			}
			if ch != -1 {
				var data string
				if r, ok := pyEscapes[ch]; ok {
					data = "\\" + r
				} else if ch <= 0xff {
					data = fmt.Sprintf("\\x%02X", ch)
				} else if ch <= 0xffff {
					data = fmt.Sprintf("\\u%04X", ch)
				} else {
					data = fmt.Sprintf("\\U%08X", ch)
				}
				e.column += len(data)
				e.write(data)
				start = end + 1
			}
		}
		if end > 0 && end < len(text)-1 && (ch == ' ' || start >= end) &&
			e.column+(end-start) > e.bestWidth && split {
			var chunk []rune
			if start < end {
				chunk = text[start:end]
				start = end
			}
			e.writeRunes(chunk)
			e.column++
			e.write("\\")
			e.writeIndent()
			e.whitespace = false
			e.indention = false
			if text[start] == ' ' {
				e.column++
				e.write("\\")
			}
		}
	}
	e.writeIndicator("\"", false, false, false)
}
