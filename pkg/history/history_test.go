package history

import "testing"

func TestEntryTouches(t *testing.T) {
	e := Entry{Changes: []Change{{Path: "state.version"}, {Path: "tags[0]"}}}
	for path, want := range map[string]bool{
		"state.version":       true,
		"state":               true, // above
		"state.version.major": true, // below
		"state.versions":      false,
		"state.ver":           false,
		"tags":                true,
		"tags[0].x":           true,
		"channel":             false,
		"":                    false,
	} {
		if got := e.Touches(path); got != want {
			t.Errorf("Touches(%q) = %v, want %v", path, got, want)
		}
	}
}
