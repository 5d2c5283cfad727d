package document

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cicdstatemgr/cicdstatemgr/internal/fuzzbudget"
)

// refParseJSON is the former token-based ParseJSON, kept as the reference the
// byte scanner must agree with (values, key order, acceptance).
func refParseJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := refDecode(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("malformed JSON: unexpected data after the top-level value")
	}
	return v, nil
}

func refDecode(dec *json.Decoder, depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("malformed JSON: nested deeper than %d levels", maxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
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
					return nil, err
				}
				k, ok := kt.(string)
				if !ok {
					return nil, fmt.Errorf("malformed JSON: object key is not a string")
				}
				v, err := refDecode(dec, depth+1)
				if err != nil {
					return nil, err
				}
				m.Set(k, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return m, nil
		case '[':
			out := []any{}
			for dec.More() {
				v, err := refDecode(dec, depth+1)
				if err != nil {
					return nil, err
				}
				out = append(out, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
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
		return t, nil
	}
}

// refWriteJSONString is the former rune-by-rune string writer.
func refWriteJSONString(buf *bytes.Buffer, s string, st JSONStyle) {
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

// plain turns a parsed value into what encoding/json's Unmarshal into any
// gives: map[string]any for objects, float64 for numbers.
func plain(v any) any {
	switch t := v.(type) {
	case *Map:
		m := map[string]any{}
		t.Range(func(k string, v any) bool { m[k] = plain(v); return true })
		return m
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = plain(e)
		}
		return out
	case int:
		return float64(t)
	default:
		return v
	}
}

func depthOf(data []byte) int {
	d, max := 0, 0
	inStr, esc := false, false
	for _, c := range data {
		switch {
		case esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case c == '"':
			inStr = !inStr
		case !inStr && (c == '[' || c == '{'):
			d++
			if d > max {
				max = d
			}
		case !inStr && (c == ']' || c == '}'):
			d--
		}
	}
	return max
}

var jsonSeeds = []string{
	``, ` `, `null`, `true`, `false`, `nul`, `tru`, `0`, `-0`, `1`, `-1`, `01`, `1.`, `.5`, `1.5`, `-1.5e10`, `1e400`, `-1e-400`,
	`1E+2`, `1e`, `1e+`, `9223372036854775807`, `9223372036854775808`, `-9223372036854775808`, `-9223372036854775809`,
	`123456789012345678`, `1234567890123456789`, `12345678901234567890`, `"abc"`, `"a\"b\\c\/d\b\f\n\r\t"`, `"\u00e9\u20ac"`,
	`"\ud83d\ude00"`, `"\ud83d"`, `"\ud83dx"`, `"\ud83d\u0041"`, `"\ude00\ud83d"`, `"\u12"`, `"\u12g4"`, `"\x"`, "\"a\x01b\"",
	"\"\xff\xfe\"", "\"\xed\xa0\x80\"", "\"é😀\"", "\"\xef\xbf\xbd\"", `"unterminated`, `"a\`, `[]`, `[1,2,[3,{}]]`, `[1,]`, `[,1]`,
	`[1 2]`, `{}`, `{"a":1,"b":[true,null],"a":2}`, `{"a" 1}`, `{"a":}`, `{"a":1,}`, `{1:2}`, `{"a":1} x`, `{"a":1} {}`,
	` {"a" : [ 1 , 2 ] } `, "{\"a\":1}\n", `[1]]`, `{"a":{"b":{"c":[1,2,{"d":"e"}]}}}`, "\ufeff{}", `[-]`, `[--1]`, `[0x10]`,
	`[Infinity]`, `[NaN]`, `"\u0000"`, `{"":""}`,
}

func TestParseJSONMatchesReference(t *testing.T) {
	deep := func(n int, open, close string) string { return strings.Repeat(open, n) + strings.Repeat(close, n) }
	cases := append([]string{}, jsonSeeds...)
	cases = append(cases, deep(1000, "[", "]"), deep(1001, "[", "]"), deep(1002, "[", "]"),
		strings.Repeat("[", 1001)+"1"+strings.Repeat("]", 1001), strings.Repeat(`{"a":`, 1001)+"1"+strings.Repeat("}", 1001),
		strings.Repeat(`{"a":`, 1000)+"1"+strings.Repeat("}", 1000))
	for _, in := range cases {
		checkAgainstReference(t, []byte(in))
	}
}

func checkAgainstReference(t *testing.T, data []byte) {
	t.Helper()
	got, err := ParseJSON(data)
	want, refErr := refParseJSON(data)
	if (err == nil) != (refErr == nil) {
		t.Fatalf("%.80q: err %v, reference err %v", data, err, refErr)
	}
	if err != nil {
		if !strings.HasPrefix(err.Error(), "malformed JSON: ") {
			t.Fatalf("%.80q: error %q lacks the prefix", data, err)
		}
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%.80q:\n got %#v\nwant %#v", data, got, want)
	}
}

// FuzzParseJSON checks the scanner against the token-based reference (same
// values, key order and acceptance) and against encoding/json (same
// acceptance and values modulo key order), and that what it parses encodes
// back to JSON that parses to the same value; parsing and encoding stay
// within the input's resource budget (internal/fuzzbudget).
func FuzzParseJSON(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	// nesting at and past the limit, and long escapes
	f.Add([]byte(strings.Repeat("[", 1000) + strings.Repeat("]", 1000)))
	f.Add([]byte(strings.Repeat(`{"a":`, 1001) + "1" + strings.Repeat("}", 1001)))
	f.Add([]byte(strings.Repeat("[", 100000)))
	f.Add([]byte(`"` + strings.Repeat(`\ud83d\ude00`, 10000) + `"`))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkAgainstReference(t, data)
		var got any
		var err error
		fuzzbudget.Check(t, fuzzbudget.For(int64(len(data)), 0), func() { got, err = ParseJSON(data) }, data)
		var std any
		stdErr := json.Unmarshal(data, &std)
		if err != nil && strings.Contains(err.Error(), "nested deeper") && depthOf(data) > maxDepth {
			return // encoding/json allows 10000 levels
		}
		if (err == nil) != (stdErr == nil) {
			t.Fatalf("%.80q: err %v, encoding/json err %v", data, err, stdErr)
		}
		if err != nil {
			return
		}
		if p := plain(got); !reflect.DeepEqual(p, std) {
			t.Fatalf("%.80q:\n got %#v\nwant %#v", data, p, std)
		}
		for _, st := range []JSONStyle{{}, PythonJSON, {HTMLSafe: true, SortKeys: true}, {Indent: 2}} {
			var enc []byte
			// Indent 2 writes up to 2 × depth (≤ 1000) bytes per value.
			fuzzbudget.Check(t, fuzzbudget.For(int64(len(data)), int64(st.Indent*maxDepth*len(data))), func() { enc, err = MarshalJSON(got, st) }, data, st)
			if err != nil {
				t.Fatalf("%.80q: encoding: %v", data, err)
			}
			again, err := ParseJSON(enc)
			if err != nil {
				t.Fatalf("%.80q: re-parsing %.80q: %v", data, enc, err)
			}
			// Integral floats come back as ints: compare as encoding/json would.
			if !reflect.DeepEqual(plain(again), plain(got)) {
				t.Fatalf("%.80q: round trip via %.80q:\n got %#v\nwant %#v", data, enc, again, got)
			}
		}
	})
}

// FuzzWriteJSONString checks the run-copying string writer against the
// former rune-by-rune one in every style, and that it stays within the
// string's resource budget (internal/fuzzbudget).
func FuzzWriteJSONString(f *testing.F) {
	for _, s := range []string{"", "abc", `a"b\c`, "é😀", "\x00\x1f\x7f", "<>&'", "\xff", "\xef\xbf\xbd", "a\u2028b", "tab\there\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, st := range []JSONStyle{{}, PythonJSON, {HTMLSafe: true}, {ASCII: true, HTMLSafe: true}} {
			var a, b bytes.Buffer
			// At most 12 bytes per input byte ("\\ud83d\\ude00" for 4).
			fuzzbudget.Check(t, fuzzbudget.For(int64(len(s)), 12*int64(len(s))), func() { writeJSONString(&a, s, st) }, s, st)
			refWriteJSONString(&b, s, st)
			if a.String() != b.String() {
				t.Fatalf("%q style %+v:\n got %s\nwant %s", s, st, a.String(), b.String())
			}
		}
		// Compact output is JSON encoding/json reads back as s (modulo U+FFFD).
		var buf bytes.Buffer
		writeJSONString(&buf, s, JSONStyle{})
		var back string
		if err := json.Unmarshal(buf.Bytes(), &back); err != nil || back != string([]rune(s)) {
			t.Fatalf("%q: %s reads back as %q, %v", s, buf.String(), back, err)
		}
	})
}

func TestParseJSONErrors(t *testing.T) {
	for in, want := range map[string]string{
		``:                                 "unexpected end of input",
		`{"a":1} x`:                        "unexpected data after the top-level value",
		`[1,]`:                             "invalid character ']' looking for beginning of value",
		`{"a" 1}`:                          "invalid character '1' after object key",
		`"a` + "\x01" + `"`:                `invalid character '\x01' in string literal`,
		`"\q"`:                             "invalid character 'q' in string escape code",
		strings.Repeat("[", 1002) + "]":    "nested deeper than 1000 levels",
		`1e400`:                            "bad number 1e400",
		`[1 2]`:                            "invalid character '2' after array element",
		`{"a":1,"b"}`:                      "invalid character '}' after object key",
		`"abc`:                             "unexpected end of input",
		`tru`:                              "unexpected end of input",
		`trux`:                             "invalid character 'x' in literal true",
		`-`:                                "unexpected end of input",
		`'a'`:                              `invalid character '\'' looking for beginning of value`,
		"\xff":                             "invalid character byte 0xff looking for beginning of value",
		`{"a":1,` + "\n" + `"b":2,` + `x}`: "offset 14",
	} {
		_, err := ParseJSON([]byte(in))
		if err == nil || !strings.HasPrefix(err.Error(), "malformed JSON: ") || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseJSON(%.40q) = %v, want %q", in, err, want)
		}
	}
}

func TestParseJSONTypes(t *testing.T) {
	v, err := ParseJSON([]byte(`{"i":-12,"big":12345678901234567890,"f":1.0,"e":1e2,"s":"\u00e9\ud83d\ude00","b":false,"n":null,"l":[],"m":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	m := v.(*Map)
	want := map[string]any{"i": -12, "big": 12345678901234567890.0, "f": 1.0, "e": 100.0, "s": "é😀", "b": false, "n": nil,
		"l": []any{}, "m": NewMap()}
	if strings.Join(m.Keys(), ",") != "i,big,f,e,s,b,n,l,m" {
		t.Fatalf("keys %v", m.Keys())
	}
	for k, w := range want {
		if g, _ := m.Get(k); !reflect.DeepEqual(g, w) {
			t.Errorf("%s = %#v (%T), want %#v (%T)", k, g, g, w, w)
		}
	}
}

// benchJSON is a document of about size bytes: many small entries.
func benchJSON(size int) []byte {
	m := NewMap()
	for i := 0; i*100 < size; i++ {
		e := NewMap()
		e.Set("name", fmt.Sprintf("step-%06d", i))
		e.Set("status", "Succeeded")
		e.Set("n", i)
		e.Set("ok", true)
		e.Set("url", fmt.Sprintf("https://ci.example.com/runs/%06d/logs?x=\u00e9", i))
		m.Set(fmt.Sprintf("k%06d", i), e)
	}
	b, _ := MarshalJSON(m, JSONStyle{})
	return b
}

// BenchmarkParseJSONVsTokenDecoder compares ParseJSON with refParseJSON,
// which builds the same ordered map from encoding/json's token Decoder, on a
// document of about 100 KB and one of about 1 MB:
//
//	go test -run '^$' -bench ParseJSONVsTokenDecoder ./pkg/document
//
// <size>/scanner and <size>/token time each alone; <size>/speedup runs both
// in turn in every iteration and reports token time / scanner time as
// "x-faster", which a loaded machine skews less than comparing two runs.
func BenchmarkParseJSONVsTokenDecoder(b *testing.B) {
	for _, size := range []struct {
		name  string
		bytes int
	}{{"100KB", 100 << 10}, {"1MB", 1 << 20}} {
		data := benchJSON(size.bytes)
		for _, dec := range []struct {
			name  string
			parse func([]byte) (any, error)
		}{{"scanner", ParseJSON}, {"token", refParseJSON}} {
			b.Run(size.name+"/"+dec.name, func(b *testing.B) {
				b.SetBytes(int64(len(data)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := dec.parse(data); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		b.Run(size.name+"/speedup", func(b *testing.B) {
			var scanner, token time.Duration
			for b.Loop() {
				t0 := time.Now()
				if _, err := ParseJSON(data); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if _, err := refParseJSON(data); err != nil {
					b.Fatal(err)
				}
				scanner += t1.Sub(t0)
				token += time.Since(t1)
			}
			b.ReportMetric(float64(token)/float64(scanner), "x-faster")
		})
	}
}

func BenchmarkMarshalJSON1MB(b *testing.B) {
	v, _ := ParseJSON(benchJSON(1 << 20))
	b.SetBytes(1 << 20)
	for b.Loop() {
		if _, err := MarshalJSON(v, JSONStyle{}); err != nil {
			b.Fatal(err)
		}
	}
}
