// Package localfiles writes the CLI's output files: the document as YAML,
// JSON and sourceable shell variables, and the id alone. They are outputs
// only (never read back), written atomically, for the id of the command.
package localfiles

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
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

var unsafeName = regexp.MustCompile(`[^0-9A-Za-z._-]+`)

func safeFileName(id string) string { return unsafeName.ReplaceAllString(id, "_") }

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

var nonVarChars = regexp.MustCompile(`[^0-9a-zA-Z_]+`)

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
			name := "CICD_" + nonVarChars.ReplaceAllString(prefix, "_")
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
