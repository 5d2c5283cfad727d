// Package localfiles writes the CLI's output files: the document as YAML,
// JSON and sourceable shell variables, and the id alone. They are outputs
// only (never read back), written atomically, for the id of the command.
package localfiles

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
)

// IDPlaceholder in a configured path is replaced by the context id, so that
// files of different contexts never overwrite each other.
const IDPlaceholder = "{id}"

// Write writes every configured file for the document of id.
func Write(files []config.LocalFile, id string, doc *document.Map) error {
	for _, f := range files {
		data, err := Render(f, id, doc)
		if err != nil {
			return err
		}
		p := strings.ReplaceAll(f.Path, IDPlaceholder, safeFileName(id))
		if err := writeAtomic(p, data); err != nil {
			return fmt.Errorf("writing %s file %s: %w", f.Kind, p, err)
		}
	}
	return nil
}

// Render returns the content of one output file.
func Render(f config.LocalFile, id string, doc *document.Map) ([]byte, error) {
	switch f.Kind {
	case "yamlfile":
		return document.MarshalYAML(doc)
	case "jsonfile":
		return document.MarshalJSON(doc, document.JSONStyle{Indent: 2})
	case "shellfile":
		return []byte(Shell(doc, f.ExcludeKeyNames)), nil
	case "idfile":
		return []byte(id), nil
	}
	return nil, fmt.Errorf("unknown local file kind %q", f.Kind)
}

// safeFileName replaces each run of characters other than [0-9A-Za-z._-] in
// id with one "_".
func safeFileName(id string) string {
	return replaceRuns(id, func(c byte) bool { return isAlnum(c) || c == '.' || c == '_' || c == '-' })
}

// replaceRuns replaces each run of bytes that keep refuses with one "_", as
// regexp's ReplaceAllString(`[^...]+`, "_") would for an ASCII class: the
// bytes of a multi-byte character (all >= 0x80) are refused together. Not a
// regexp: compiling one at start would cost every run of the CLI, whose
// start-up is measured against a Go hello world (README, Benchmarks).
func replaceRuns(s string, keep func(byte) bool) string {
	var b strings.Builder
	b.Grow(len(s))
	inRun := false
	for i := 0; i < len(s); i++ {
		if keep(s[i]) {
			b.WriteByte(s[i])
			inRun = false
		} else if !inRun {
			b.WriteByte('_')
			inRun = true
		}
	}
	return b.String()
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Shell flattens the document into CICD_<path> variables joined by "__"
// (list items by index), leaving out excluded key names at any depth and
// null or empty values. Values are single-quoted, so sourcing the file never
// expands or runs anything.
func Shell(doc *document.Map, exclude []string) string {
	skip := map[string]bool{}
	for _, e := range exclude {
		skip[e] = true
	}
	var b strings.Builder
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch t := v.(type) {
		case *document.Map:
			t.Range(func(k string, c any) bool {
				if !skip[k] {
					walk(join(prefix, k), c)
				}
				return true
			})
		case []any:
			for i, c := range t {
				walk(join(prefix, strconv.Itoa(i)), c)
			}
		case nil:
		default:
			name := "CICD_" + replaceRuns(prefix, func(c byte) bool { return isAlnum(c) || c == '_' })
			b.WriteString(name)
			b.WriteByte('=')
			b.WriteString(ShellQuote(scalarText(t)))
			b.WriteByte('\n')
		}
	}
	walk("", doc)
	return b.String()
}

func join(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "__" + k
}

func scalarText(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case bool:
		return strconv.FormatBool(t)
	default:
		return document.MustJSON(t, document.JSONStyle{})
	}
}

// ShellQuote quotes s for POSIX shells.
func ShellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
