package tmpl

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/flosch/pongo2/v6"
)

// Maps and lists print the way jinja2 prints a dict or list: {{ m }} gives
// {'a': 1, 'b': [True, None]} (document maps in their order, Go maps sorted),
// where pongo2 would print "<document.Map Value>". The forked pongo2 asks
// formatValue for the text of such values (pongo2.FormatValue), for {{ v }},
// string filters and stringformat alike.
func init() {
	pongo2.FormatValue = formatValue
}

// formatValue is the pongo2.FormatValue hook: Python's repr() of document
// maps, lists and Go map[string]any; other values are left to pongo2.
func formatValue(v any) (string, bool) {
	switch v.(type) {
	case *document.Map, []any, map[string]any:
		var b strings.Builder
		writeRepr(&b, v, 0)
		return b.String(), true
	}
	return "", false
}

// writeRepr writes Python's repr() of a template value.
func writeRepr(b *strings.Builder, v any, depth int) {
	if depth > maxConvertDepth {
		b.WriteString("...")
		return
	}
	switch t := v.(type) {
	case nil:
		b.WriteString("None")
	case bool:
		if t {
			b.WriteString("True")
		} else {
			b.WriteString("False")
		}
	case int:
		b.WriteString(strconv.Itoa(t))
	case float64:
		b.WriteString(pyFloat(t))
	case string:
		b.WriteString(pyStringRepr(t))
	case *document.Map:
		if t == nil {
			b.WriteString("None")
			return
		}
		b.WriteByte('{')
		for i, k := range t.Keys() {
			if i > 0 {
				b.WriteString(", ")
			}
			v, _ := t.Get(k)
			b.WriteString(pyStringRepr(k))
			b.WriteString(": ")
			writeRepr(b, v, depth+1)
		}
		b.WriteByte('}')
	case map[string]any:
		b.WriteByte('{')
		for i, k := range sortedKeys(t) {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(pyStringRepr(k))
			b.WriteString(": ")
			writeRepr(b, t[k], depth+1)
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				b.WriteString(", ")
			}
			writeRepr(b, e, depth+1)
		}
		b.WriteByte(']')
	default:
		fmt.Fprint(b, t)
	}
}

// pyFloat is Python's repr of a float: shortest round-trip digits, ".0" on
// integral values, exponent form below 1e-4 and from 1e16.
func pyFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64)
	exp, _ := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	if f != 0 && (exp < -4 || exp >= 16) {
		return e
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}

// pyStringRepr is Python's repr of a str.
func pyStringRepr(s string) string {
	quote := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		quote = '"'
	}
	var b strings.Builder
	b.WriteByte(quote)
	for i, w := 0, 0; i < len(s); i += w {
		r, width := utf8.DecodeRuneInString(s[i:])
		w = width
		switch {
		case r == utf8.RuneError && width == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == rune(quote) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r < 0x80 || unicode.IsPrint(r):
			b.WriteRune(r)
		case r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r < 0x10000:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
	}
	b.WriteByte(quote)
	return b.String()
}
