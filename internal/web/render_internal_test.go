package web

import "testing"

// TestTemplatesParse: templates are parsed on first use, so a broken one
// would show only when its page is first served; this parses them all.
func TestTemplatesParse(t *testing.T) {
	m := templates()
	for _, p := range append(pages, page{name: "error"}) {
		if m[p.name] == nil || m[p.name].Lookup(p.name+".html") == nil && m[p.name].Lookup("layout.html") == nil {
			t.Errorf("template %q missing", p.name)
		}
	}
}
