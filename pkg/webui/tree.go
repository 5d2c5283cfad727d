package webui

import (
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
)

// Bounds of one page: a context may hold megabytes of state and a namespace
// thousands of contexts; the page shows this much and says what it left out.
const (
	// MaxTreeNodes is the number of keys and items a context page shows.
	MaxTreeNodes = 2000
	// MaxTreeDepth is how deep the tree goes; deeper values show as a
	// count of their entries.
	MaxTreeDepth = 32
	// MaxValueBytes is how much of one value is shown; a longer one is cut
	// and its size given.
	MaxValueBytes = 512
	// MaxContexts is the number of contexts a namespace page lists.
	MaxContexts = 200
	// MaxHistory is the number of history entries a context page shows.
	MaxHistory = 50
	// MaxGates is the number of ApprovalGates a page shows.
	MaxGates = 100
	// MaxNamespaces is the number of namespaces the home page checks and lists.
	MaxNamespaces = 200
)

// node is one key (of a map) or item (of a list) of a document.
type node struct {
	Key string
	// Kind is map, list, string, number, bool or null.
	Kind string
	// Value is a scalar as text (cut: see Cut); empty for maps and lists.
	Value string
	// Cut is the full size in bytes of a value shown cut.
	Cut      int
	Children []*node
	// Hidden counts the entries of a map or list left out (node budget or depth).
	Hidden int
	// Open: a map or list shown unfolded. The top-level keys but state are
	// folded (configuration: pipelines, app configs, macros), so the state
	// comes first to the eye; a click on a <details> unfolds, no script.
	Open bool
}

// Size is the number of entries of a map or list.
func (n *node) Size() int { return len(n.Children) + n.Hidden }

// treeOf is the tree of doc, at most budget nodes.
func treeOf(doc *document.Map, budget int) (root *node, shown int) {
	t := &treeBuilder{left: budget}
	root = t.build("$", doc, 0)
	root.Open = true
	for _, c := range root.Children {
		c.Open = c.Key == "state"
	}
	return root, budget - t.left
}

type treeBuilder struct{ left int }

func (t *treeBuilder) build(key string, v any, depth int) *node {
	n := &node{Key: key, Open: true}
	switch x := v.(type) {
	case *document.Map:
		n.Kind = "map"
		if depth >= MaxTreeDepth {
			n.Hidden = x.Len()
			break
		}
		x.Range(func(k string, child any) bool {
			if t.left <= 0 {
				n.Hidden++
				return true
			}
			t.left--
			n.Children = append(n.Children, t.build(k, child, depth+1))
			return true
		})
	case []any:
		n.Kind = "list"
		if depth >= MaxTreeDepth {
			n.Hidden = len(x)
			break
		}
		for i, child := range x {
			if t.left <= 0 {
				n.Hidden = len(x) - i
				break
			}
			t.left--
			n.Children = append(n.Children, t.build("["+strconv.Itoa(i)+"]", child, depth+1))
		}
	case string:
		n.Kind = "string"
		n.Value, n.Cut = cut(x, MaxValueBytes)
	case nil:
		n.Kind, n.Value = "null", "null"
	case bool:
		n.Kind, n.Value = "bool", strconv.FormatBool(x)
	default:
		n.Kind = "number"
		n.Value, n.Cut = cut(document.MustJSON(x, document.JSONStyle{}), MaxValueBytes)
		if n.Value == "" {
			n.Value = fmt.Sprint(x)
		}
	}
	return n
}

// cut shortens s to at most max bytes on a rune boundary; full is len(s) when
// it was cut, else 0.
func cut(s string, max int) (shown string, full int) {
	if len(s) <= max {
		return s, 0
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i], len(s)
}
