package policy

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"keycard/access"
)

// ImportGroup is one IdP group found inside a connector's scope, with the
// emails of its members today.
type ImportGroup struct {
	Name    string
	Members []string
}

// Import writes a starting policy file for adopting an existing IdP (SPEC:
// `keycard policy import`): the connectors of src as they are, one policy
// per group with safe defaults (privileged, manager approval, 4h/8h,
// justification required) and each group's current members listed in
// comments as standing access, which keycard never removes. The result
// parses as it is; Import checks that before returning it.
func Import(src *Set, connector string, groups []ImportGroup) ([]byte, error) {
	c, ok := src.Connectors[connector]
	if !ok {
		return nil, fmt.Errorf("%q is not a connector of %s (connectors: %s)", connector, src.Path, strings.Join(slices.Sorted(maps.Keys(src.Connectors)), ", "))
	}
	var inScope []ImportGroup
	for _, g := range groups {
		if c.InScope(g.Name) {
			inScope = append(inScope, g)
		}
	}
	if len(inScope) == 0 {
		return nil, fmt.Errorf("connector %s has no group inside its scope %v: nothing to import", connector, c.Scope)
	}
	slices.SortFunc(inScope, func(a, b ImportGroup) int { return strings.Compare(a.Name, b.Name) })

	var b bytes.Buffer
	fmt.Fprintf(&b, "# A starting policy written by `keycard policy import --connector %s` from the\n", connector)
	fmt.Fprintf(&b, "# groups inside the connector's scope. Every policy starts strict (privileged,\n")
	fmt.Fprintf(&b, "# the manager approves, 4h by default and 8h at most, a justification\n")
	fmt.Fprintf(&b, "# required): loosen what you trust, then `keycard policy check` it.\n")
	b.WriteString("version: 1\n\n")
	fmt.Fprintf(&b, "directory: %s\n\n", src.Directory)
	conns := map[string]connectorOut{}
	for name, sc := range src.Connectors {
		conns[name] = toConnectorOut(sc)
	}
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(map[string]any{"connectors": conns}); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	b.WriteString("\nprofiles:\n  everyone: {}\n\npolicies:\n")
	used := map[string]bool{}
	for _, g := range inScope {
		name := policyName(g.Name, used)
		fmt.Fprintf(&b, "  - name: %s\n", name)
		fmt.Fprintf(&b, "    app: %s\n", scalar(g.Name))
		b.WriteString("    role: Member\n")
		fmt.Fprintf(&b, "    group: %s\n", scalar(g.Name))
		if connector != src.Directory {
			fmt.Fprintf(&b, "    connector: %s\n", connector)
		}
		b.WriteString("    privileged: true\n    eligible: [everyone]\n    approval:\n      - manager\n")
		b.WriteString("    duration: {default: 4h, max: 8h}\n    justification: required\n")
		members := slices.Clone(g.Members)
		slices.Sort(members)
		if len(members) == 0 {
			b.WriteString("    # standing access today: nobody\n")
			continue
		}
		fmt.Fprintf(&b, "    # standing access today (%d; keycard never removes it, and refuses\n", len(members))
		b.WriteString("    # requests from these people for this group):\n")
		for _, m := range members {
			fmt.Fprintf(&b, "    #   %s\n", strings.ReplaceAll(m, "\n", " "))
		}
	}
	if _, err := Parse("imported policy", b.Bytes()); err != nil {
		return nil, fmt.Errorf("the imported policy does not parse (a keycard bug; please report it): %w", err)
	}
	return b.Bytes(), nil
}

// connectorOut is a connector as the policy file writes it.
type connectorOut struct {
	Type             string     `yaml:"type"`
	Scope            scopeOut   `yaml:"scope"`
	ManagerAttribute string     `yaml:"manager_attribute,omitempty"`
	Users            []userOut  `yaml:"users,omitempty"`
	Groups           []groupOut `yaml:"groups,omitempty"`
}

type scopeOut struct {
	Groups []string `yaml:"groups,flow"`
}

type userOut struct {
	Email      string            `yaml:"email"`
	Name       string            `yaml:"name,omitempty"`
	Manager    string            `yaml:"manager,omitempty"`
	Status     string            `yaml:"status,omitempty"`
	Attributes map[string]string `yaml:"attributes,omitempty"`
}

type groupOut struct {
	Name    string   `yaml:"name"`
	Members []string `yaml:"members,flow"`
}

func toConnectorOut(c *Connector) connectorOut {
	out := connectorOut{Type: c.Type, Scope: scopeOut{Groups: slices.Clone(c.Scope)}}
	if c.Type == ConnectorOkta && c.ManagerAttribute != DefaultManagerAttribute {
		out.ManagerAttribute = c.ManagerAttribute
	}
	for _, u := range c.Users {
		uo := userOut{Email: u.Email, Name: u.Name, Manager: u.Manager, Attributes: u.Attributes}
		if u.Status != access.StatusActive {
			uo.Status = string(u.Status)
		}
		out.Users = append(out.Users, uo)
	}
	for _, g := range c.Groups {
		out.Groups = append(out.Groups, groupOut{Name: g.Name, Members: append([]string{}, g.Members...)})
	}
	return out
}

// policyName makes a policy name ([a-z0-9-], at most 63 characters, not a
// reserved word, unique) from a group name.
func policyName(group string, used map[string]bool) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(group) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	name := strings.Trim(b.String(), "-")
	if len(name) > maxNameLen-4 {
		name = strings.Trim(name[:maxNameLen-4], "-")
	}
	if name == "" {
		name = "group"
	}
	if _, reserved := reservedNames[name]; reserved {
		name += "-role"
	}
	base := name
	for i := 2; used[name]; i++ {
		name = fmt.Sprintf("%s-%d", base, i)
	}
	used[name] = true
	return name
}

// scalar quotes s for YAML when it needs it.
func scalar(s string) string {
	out, err := yaml.Marshal(s)
	if err != nil {
		return fmt.Sprintf("%q", s)
	}
	return strings.TrimSuffix(string(out), "\n")
}
