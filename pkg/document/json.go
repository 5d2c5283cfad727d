package document

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// JSONStyle selects how JSON text is written. The zero value is compact Go
// style (no spaces, UTF-8 kept), used for storage.
type JSONStyle struct {
	// Python uses json.dumps' default separators ", " and ": ".
	Python bool
	// ASCII escapes every non-ASCII character as \uXXXX (Python ensure_ascii).
	ASCII bool
	// SortKeys sorts map keys (jinja2 tojson).
	SortKeys bool
	// HTMLSafe escapes < > & ' as \u003c \u003e \u0026 \u0027 (jinja2 tojson).
	HTMLSafe bool
	// Indent > 0 pretty-prints with that many spaces.
	Indent int
}

// PythonJSON is the layout of Python's json.dumps with default arguments.
var PythonJSON = JSONStyle{Python: true, ASCII: true}

// MarshalJSON renders a document value as JSON in key order.
func MarshalJSON(v any, style JSONStyle) ([]byte, error) {
	var buf bytes.Buffer
	if err := writeJSON(&buf, v, style, 0); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// MustJSON is MarshalJSON for values known to be encodable.
func MustJSON(v any, style JSONStyle) string {
	b, err := MarshalJSON(v, style)
	if err != nil {
		return ""
	}
	return string(b)
}

// ErrTooDeep: a value nested deeper than the readers of this package accept
// (ParseJSON and the YAML parser: 1000 levels). The writer refuses it, so
// that nothing is stored that cannot be read back.
var ErrTooDeep = errors.New("value nested deeper than " + strconv.Itoa(maxDepth) + " levels")

func writeJSON(buf *bytes.Buffer, v any, st JSONStyle, level int) error {
	if level > maxDepth {
		return ErrTooDeep
	}
	switch t := v.(type) {
	case nil:
		buf.WriteString("null")
	case bool:
		if t {
			buf.WriteString("true")
		} else {
			buf.WriteString("false")
		}
	case int:
		buf.Write(strconv.AppendInt(buf.AvailableBuffer(), int64(t), 10))
	case int64:
		buf.Write(strconv.AppendInt(buf.AvailableBuffer(), t, 10))
	case uint64:
		buf.Write(strconv.AppendUint(buf.AvailableBuffer(), t, 10))
	case float64:
		if math.IsInf(t, 0) || math.IsNaN(t) {
			return fmt.Errorf("cannot encode %v as JSON", t)
		}
		buf.WriteString(formatFloat(t))
	case json.Number:
		buf.WriteString(t.String())
	case string:
		writeJSONString(buf, t, st)
	case []any:
		if len(t) == 0 {
			buf.WriteString("[]")
			return nil
		}
		buf.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				writeSep(buf, st, ',')
			}
			newline(buf, st, level+1)
			if err := writeJSON(buf, e, st, level+1); err != nil {
				return err
			}
		}
		newline(buf, st, level)
		buf.WriteByte(']')
	case *Map:
		if t == nil || st.SortKeys {
			return writeJSONMap(buf, t.Keys(), func(k string) any { v, _ := t.Get(k); return v }, st, level)
		}
		return writeJSONOrdered(buf, t, st, level)
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return writeJSONMap(buf, keys, func(k string) any { return t[k] }, st, level)
	default:
		b, err := json.Marshal(t)
		if err != nil {
			return err
		}
		buf.Write(b)
	}
	return nil
}

func writeJSONMap(buf *bytes.Buffer, keys []string, get func(string) any, st JSONStyle, level int) error {
	if len(keys) == 0 {
		buf.WriteString("{}")
		return nil
	}
	if st.SortKeys {
		keys = append([]string(nil), keys...)
		sort.Strings(keys)
	}
	buf.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			writeSep(buf, st, ',')
		}
		newline(buf, st, level+1)
		writeJSONString(buf, k, st)
		writeSep(buf, st, ':')
		if err := writeJSON(buf, get(k), st, level+1); err != nil {
			return err
		}
	}
	newline(buf, st, level)
	buf.WriteByte('}')
	return nil
}

// writeJSONOrdered is writeJSONMap for a *Map in its own key order, without
// the per-key closure call.
func writeJSONOrdered(buf *bytes.Buffer, m *Map, st JSONStyle, level int) error {
	if len(m.keys) == 0 {
		buf.WriteString("{}")
		return nil
	}
	buf.WriteByte('{')
	for i, k := range m.keys {
		if i > 0 {
			writeSep(buf, st, ',')
		}
		newline(buf, st, level+1)
		writeJSONString(buf, k, st)
		writeSep(buf, st, ':')
		if err := writeJSON(buf, m.vals[k], st, level+1); err != nil {
			return err
		}
	}
	newline(buf, st, level)
	buf.WriteByte('}')
	return nil
}

func writeSep(buf *bytes.Buffer, st JSONStyle, c byte) {
	buf.WriteByte(c)
	// Python puts a space after ":" always, and after "," unless indenting.
	if c == ':' && (st.Python || st.Indent > 0) {
		buf.WriteByte(' ')
	}
	if c == ',' && st.Python && st.Indent == 0 {
		buf.WriteByte(' ')
	}
}

func newline(buf *bytes.Buffer, st JSONStyle, level int) {
	if st.Indent <= 0 {
		return
	}
	buf.WriteByte('\n')
	for i := 0; i < level*st.Indent; i++ {
		buf.WriteByte(' ')
	}
}

const hexDigits = "0123456789abcdef"

// plainASCII says which ASCII bytes are written as they are in every style
// (HTMLSafe, ASCII and 0x7f are handled by writeJSONString).
var plainASCII = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func writeJSONString(buf *bytes.Buffer, s string, st JSONStyle) {
	buf.WriteByte('"')
	// Runs of bytes that need no escaping are copied in one go.
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if plainASCII[c] && !(st.HTMLSafe && (c == '<' || c == '>' || c == '&' || c == '\'')) {
				i++
				continue
			}
			buf.WriteString(s[start:i])
			switch c {
			case '"':
				buf.WriteString(`\"`)
			case '\\':
				buf.WriteString(`\\`)
			case '\n':
				buf.WriteString(`\n`)
			case '\r':
				buf.WriteString(`\r`)
			case '\t':
				buf.WriteString(`\t`)
			case '\b':
				buf.WriteString(`\b`)
			case '\f':
				buf.WriteString(`\f`)
			case 0x7f:
				if st.ASCII {
					writeUnicodeEscape(buf, 0x7f)
				} else {
					buf.WriteByte(c)
				}
			default: // other control characters, HTML-unsafe characters
				writeUnicodeEscape(buf, rune(c))
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r != utf8.RuneError && !st.ASCII {
			i += size
			continue
		}
		buf.WriteString(s[start:i])
		switch {
		case r == utf8.RuneError: // invalid UTF-8, and U+FFFD itself
			writeUnicodeEscape(buf, 0xfffd)
		case r > 0xffff:
			r1, r2 := surrogates(r)
			writeUnicodeEscape(buf, r1)
			writeUnicodeEscape(buf, r2)
		default:
			writeUnicodeEscape(buf, r)
		}
		i += size
		start = i
	}
	buf.WriteString(s[start:])
	buf.WriteByte('"')
}

func surrogates(r rune) (rune, rune) {
	r -= 0x10000
	return 0xd800 + (r>>10)&0x3ff, 0xdc00 + r&0x3ff
}

func writeUnicodeEscape(buf *bytes.Buffer, r rune) {
	buf.WriteString(`\u`)
	buf.WriteByte(hexDigits[(r>>12)&0xf])
	buf.WriteByte(hexDigits[(r>>8)&0xf])
	buf.WriteByte(hexDigits[(r>>4)&0xf])
	buf.WriteByte(hexDigits[r&0xf])
}

// formatFloat prints a float the way JSON (and Python) readers expect: the
// shortest text that round-trips, never Go's "%f" padding.
func formatFloat(f float64) string {
	abs := math.Abs(f)
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		return strconv.FormatFloat(f, 'e', -1, 64)
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	return s
}

// FormatFloat is exported for the template environment, which prints floats
// as JSON numbers.
func FormatFloat(f float64) string { return formatFloat(f) }

// ParseJSON decodes JSON keeping key order. Numbers become int when they are
// integral and fit, float64 otherwise; objects become *Map, arrays []any.
// Strings are decoded as encoding/json does (invalid UTF-8 and unpaired
// surrogate escapes become U+FFFD). Nesting deeper than 1000 levels, malformed
// input and data after the top-level value are errors ("malformed JSON: ...").
//
// It is a hand-written byte scanner. Building the same ordered map from
// encoding/json's token Decoder takes 3 to 4 times as long (measured 3.3-3.5x
// on a 100 KB document and 2.9-4.1x on a 1 MB one, on a loaded 2-core
// machine) with 2.5 times the bytes and 7 times the allocations:
// BenchmarkParseJSONVsTokenDecoder in json_test.go (its <size>/speedup
// sub-benchmarks report the ratio as "x-faster").
func ParseJSON(data []byte) (any, error) {
	p := jsonParser{data: data}
	p.skipSpace()
	if p.pos >= len(p.data) {
		return nil, errors.New("malformed JSON: unexpected end of input")
	}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos < len(p.data) {
		return nil, errors.New("malformed JSON: unexpected data after the top-level value")
	}
	return v, nil
}

type jsonParser struct {
	data []byte
	pos  int
	buf  []byte // scratch for strings with escapes
	// Members and elements of the containers being parsed, innermost last:
	// a container is built once its size is known.
	members []member
	elems   []any
	keys    map[string]string // object keys seen, to share their strings
}

type member struct {
	k string
	v any
}

func (p *jsonParser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// errAt describes the byte at the current position (or the end of input).
func (p *jsonParser) errAt(context string) error {
	if p.pos >= len(p.data) {
		return errors.New("malformed JSON: unexpected end of input")
	}
	return fmt.Errorf("malformed JSON: invalid character %s %s at offset %d",
		quoteByte(p.data[p.pos]), context, p.pos)
}

func quoteByte(c byte) string {
	switch {
	case c == '\'':
		return `'\''`
	case c == '"':
		return `'"'`
	case c >= utf8.RuneSelf:
		return fmt.Sprintf("byte 0x%02x", c)
	}
	s := strconv.Quote(string(rune(c)))
	return "'" + s[1:len(s)-1] + "'"
}

// value parses the value starting at p.pos (leading white space allowed).
func (p *jsonParser) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("malformed JSON: nested deeper than %d levels", maxDepth)
	}
	p.skipSpace()
	if p.pos >= len(p.data) {
		return nil, errors.New("malformed JSON: unexpected end of input")
	}
	switch c := p.data[p.pos]; c {
	case '{':
		return p.object(depth)
	case '[':
		return p.array(depth)
	case '"':
		return p.str()
	case 't':
		return p.literal("true", true)
	case 'f':
		return p.literal("false", false)
	case 'n':
		return p.literal("null", nil)
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			return p.number()
		}
		return nil, p.errAt("looking for beginning of value")
	}
}

func (p *jsonParser) literal(word string, v any) (any, error) {
	for i := 0; i < len(word); i++ {
		if p.pos >= len(p.data) || p.data[p.pos] != word[i] {
			return nil, p.errAt("in literal " + word)
		}
		p.pos++
	}
	return v, nil
}

func (p *jsonParser) object(depth int) (any, error) {
	p.pos++ // '{'
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return NewMap(), nil
	}
	base := len(p.members)
	for {
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, p.errAt("looking for beginning of object key string")
		}
		k, err := p.key()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, p.errAt("after object key")
		}
		p.pos++
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		p.members = append(p.members, member{k, v})
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, p.errAt("")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			ms := p.members[base:]
			m := &Map{keys: make([]string, 0, len(ms)), vals: make(map[string]any, len(ms))}
			for i := range ms {
				m.Set(ms[i].k, ms[i].v)
				ms[i] = member{}
			}
			p.members = p.members[:base]
			return m, nil
		default:
			return nil, p.errAt("after object key:value pair")
		}
	}
}

// key parses an object key, sharing the string of keys seen before.
func (p *jsonParser) key() (string, error) {
	start := p.pos + 1
	for i := start; i < len(p.data) && i-start <= 64; i++ {
		c := p.data[i]
		if c == '"' {
			if k, ok := p.keys[string(p.data[start:i])]; ok {
				p.pos = i + 1
				return k, nil
			}
			break
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
	}
	k, err := p.str()
	if err == nil && len(k) <= 64 && len(p.keys) < 4096 {
		if p.keys == nil {
			p.keys = map[string]string{}
		}
		p.keys[k] = k
	}
	return k, err
}

func (p *jsonParser) array(depth int) (any, error) {
	p.pos++ // '['
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return []any{}, nil
	}
	base := len(p.elems)
	for {
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		p.elems = append(p.elems, v)
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, p.errAt("")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			out := make([]any, len(p.elems)-base)
			copy(out, p.elems[base:])
			clear(p.elems[base:])
			p.elems = p.elems[:base]
			return out, nil
		default:
			return nil, p.errAt("after array element")
		}
	}
}

// str parses the string at p.pos (which is '"').
func (p *jsonParser) str() (string, error) {
	start := p.pos + 1
	i := start
	// Fast path: no escapes and valid UTF-8, so the bytes are the string.
	for i < len(p.data) {
		c := p.data[i]
		switch {
		case c == '"':
			p.pos = i + 1
			return string(p.data[start:i]), nil
		case c == '\\' || c < 0x20:
			return p.strSlow(start, i)
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(p.data[i:])
			if r == utf8.RuneError && size == 1 {
				return p.strSlow(start, i)
			}
			i += size
		}
	}
	p.pos = i
	return "", errors.New("malformed JSON: unexpected end of input in string")
}

// strSlow finishes a string from i (start is just after the opening quote)
// decoding escapes and replacing invalid UTF-8 the way encoding/json does.
func (p *jsonParser) strSlow(start, i int) (string, error) {
	b := append(p.buf[:0], p.data[start:i]...)
	for i < len(p.data) {
		c := p.data[i]
		switch {
		case c == '"':
			p.pos = i + 1
			p.buf = b[:0]
			return string(b), nil
		case c < 0x20:
			p.pos = i
			return "", p.errAt("in string literal")
		case c == '\\':
			if i+1 >= len(p.data) {
				p.pos = i + 1
				return "", p.errAt("")
			}
			e := p.data[i+1]
			switch e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r, ok := hex4(p.data, i+2)
				if !ok {
					p.pos = i + 2
					for k := 0; k < 4 && p.pos < len(p.data) && isHex(p.data[p.pos]); k++ {
						p.pos++
					}
					return "", p.errAt("in \\u hexadecimal character escape")
				}
				i += 6
				if utf16.IsSurrogate(r) {
					// A valid pair takes the next escape too; anything else is U+FFFD.
					if i+1 < len(p.data) && p.data[i] == '\\' && p.data[i+1] == 'u' {
						if r2, ok := hex4(p.data, i+2); ok {
							if dec := utf16.DecodeRune(r, r2); dec != unicode.ReplacementChar {
								b = utf8.AppendRune(b, dec)
								i += 6
								continue
							}
						}
					}
					r = unicode.ReplacementChar
				}
				b = utf8.AppendRune(b, r)
				continue
			default:
				p.pos = i + 1
				return "", p.errAt("in string escape code")
			}
			i += 2
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			r, size := utf8.DecodeRune(p.data[i:])
			if r == utf8.RuneError && size == 1 {
				b = utf8.AppendRune(b, unicode.ReplacementChar)
			} else {
				b = append(b, p.data[i:i+size]...)
			}
			i += size
		}
	}
	p.pos = i
	return "", errors.New("malformed JSON: unexpected end of input in string")
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// hex4 decodes the 4 hex digits at data[i:].
func hex4(data []byte, i int) (rune, bool) {
	if i+4 > len(data) {
		return 0, false
	}
	var r rune
	for _, c := range data[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// number parses -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *jsonParser) number() (any, error) {
	d := p.data
	start := p.pos
	i := start
	neg := false
	if d[i] == '-' {
		neg = true
		i++
	}
	digits := i
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		p.pos = i
		return nil, p.errAt("in numeric literal")
	}
	integral := true
	if i < len(d) && d[i] == '.' {
		integral = false
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			p.pos = i
			return nil, p.errAt("after decimal point in numeric literal")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		integral = false
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			p.pos = i
			return nil, p.errAt("in exponent of numeric literal")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	p.pos = i
	if integral && i-digits <= 18 {
		// Fits in an int64 (and int is 64 bits wide on the platforms we build for).
		n := 0
		for _, c := range d[digits:i] {
			n = n*10 + int(c-'0')
		}
		if neg {
			n = -n
		}
		if strconv.IntSize == 64 || (n >= math.MinInt32 && n <= math.MaxInt32) {
			return n, nil
		}
	}
	s := string(d[start:i])
	if integral {
		if n, err := strconv.ParseInt(s, 10, 0); err == nil {
			return int(n), nil
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, fmt.Errorf("malformed JSON: bad number %s", s)
	}
	return f, nil
}
