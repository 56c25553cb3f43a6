package policy

// Parsing of `profiles`: named eligibility filters over directory attributes.

import (
	"go.yaml.in/yaml/v3"
)

// profiles reads the `profiles` mapping: named `where` filters over the
// directory's attributes, referenced by policies' `eligible`.
func (d *decoder) profiles(s *Set, n *yaml.Node) {
	d.entries(n, "profiles", func(k, v *yaml.Node) {
		field := "profiles." + k.Value
		d.name(k, field, "profile", k.Value)
		p := &Profile{Name: k.Value, Where: map[string][]string{}}
		if !isNull(v) {
			if f, ok := d.mapping(v, field, "where"); ok {
				if w := f.get("where"); w != nil {
					p.Where = d.where(w, field+".where")
				}
			}
		}
		s.Profiles[p.Name] = p
	})
}
