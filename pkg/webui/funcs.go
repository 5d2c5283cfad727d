package webui

import (
	"html/template"
	"time"
)

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"fmtTime": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	},
	"maxNamespaces": func() int { return MaxNamespaces },
	"maxContexts":   func() int { return MaxContexts },
	"maxHistory":    func() int { return MaxHistory },
	"maxGates":      func() int { return MaxGates },
	"gatesOf": func(gates []gateView, note, csrf string) gatesData {
		return gatesData{Gates: gates, Note: note, CSRF: csrf}
	},
}

// gatesData is what the "gates" template shows.
type gatesData struct {
	Gates []gateView
	Note  string
	CSRF  string
}
