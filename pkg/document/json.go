package document

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
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

func writeJSON(buf *bytes.Buffer, v any, st JSONStyle, level int) error {
	switch t := v.(type) {
	case nil:
		buf.WriteString("null")
	case bool:
		buf.WriteString(strconv.FormatBool(t))
	case int:
		buf.WriteString(strconv.Itoa(t))
	case int64:
		buf.WriteString(strconv.FormatInt(t, 10))
	case uint64:
		buf.WriteString(strconv.FormatUint(t, 10))
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
		return writeJSONMap(buf, t.Keys(), func(k string) any { v, _ := t.Get(k); return v }, st, level)
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

func writeJSONString(buf *bytes.Buffer, s string, st JSONStyle) {
	buf.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			buf.WriteString(`\"`)
		case r == '\\':
			buf.WriteString(`\\`)
		case r == '\n':
			buf.WriteString(`\n`)
		case r == '\r':
			buf.WriteString(`\r`)
		case r == '\t':
			buf.WriteString(`\t`)
		case r == '\b':
			buf.WriteString(`\b`)
		case r == '\f':
			buf.WriteString(`\f`)
		case r < 0x20, st.HTMLSafe && (r == '<' || r == '>' || r == '&' || r == '\''):
			writeUnicodeEscape(buf, r)
		case r == utf8.RuneError:
			writeUnicodeEscape(buf, 0xfffd)
		case r > 0x7e && st.ASCII:
			if r > 0xffff {
				r1, r2 := surrogates(r)
				writeUnicodeEscape(buf, r1)
				writeUnicodeEscape(buf, r2)
			} else {
				writeUnicodeEscape(buf, r)
			}
		default:
			buf.WriteRune(r)
		}
	}
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
// integral and fit, float64 otherwise.
func ParseJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeJSONValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("malformed JSON: unexpected data after the top-level value")
	}
	return v, nil
}

func decodeJSONValue(dec *json.Decoder, depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("malformed JSON: nested deeper than %d levels", maxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("malformed JSON: unexpected end of input")
		}
		return nil, fmt.Errorf("malformed JSON: %w", err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			m := NewMap()
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, fmt.Errorf("malformed JSON: %w", err)
				}
				k, ok := kt.(string)
				if !ok {
					return nil, fmt.Errorf("malformed JSON: object key is not a string")
				}
				v, err := decodeJSONValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				m.Set(k, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("malformed JSON: %w", err)
			}
			return m, nil
		case '[':
			out := []any{}
			for dec.More() {
				v, err := decodeJSONValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				out = append(out, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("malformed JSON: %w", err)
			}
			return out, nil
		}
		return nil, fmt.Errorf("malformed JSON: unexpected %v", t)
	case json.Number:
		if i, err := strconv.ParseInt(t.String(), 10, 0); err == nil {
			return int(i), nil
		}
		f, err := t.Float64()
		if err != nil {
			return nil, fmt.Errorf("malformed JSON: bad number %s", t)
		}
		return f, nil
	default:
		return t, nil // string, bool, nil
	}
}
