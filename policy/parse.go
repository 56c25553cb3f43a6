package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Load reads the policy file at path and parses it.
func Load(path string) (*Set, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read policy file: %w", err)
	}
	return Parse(path, data)
}

// Parse validates data, the bytes of the policy file at path, and returns the
// Set it describes. On failure it returns *Errors holding every problem found,
// each with file:line and the field path.
func Parse(file string, data []byte) (*Set, error) {
	sum := sha256.Sum256(data)
	d := &decoder{file: file}
	s := &Set{
		Path:             file,
		Hash:             hex.EncodeToString(sum[:]),
		Raw:              append([]byte(nil), data...),
		Connectors:       map[string]*Connector{},
		Profiles:         map[string]*Profile{},
		ExpiryWarning:    DefaultExpiryWarning,
		OffboardingSLA:   DefaultOffboardingSLA,
		OffboardingCheck: DefaultOffboardingCheck,
		Reviews:          Reviews{Timezone: time.UTC, TimezoneName: "UTC"},
	}
	root := d.document(data)
	if root != nil {
		d.set(s, root)
	}
	if len(d.errs) > 0 {
		d.errs.sortByLine()
		return nil, &d.errs
	}
	return s, nil
}

// set decodes the top-level mapping.
// topKeys are the policy file's top-level keys.
var topKeys = []string{"version", "directory", "connectors", "profiles", "policies",
	"auditors", "admins", "alerts", "reviews", "expiry_warning", "offboarding_sla",
	"offboarding_check", "change_approval",
	"conflicts", "conflicts_mode"} // separation of duties: conflicts.go

// ParseConnectors reads only the version, directory and connectors of a
// policy file: what `keycard policy import` needs to reach an IdP before any
// policy is written. The rest of the file is not checked.
func ParseConnectors(file string, data []byte) (*Set, error) {
	d := &decoder{file: file}
	s := &Set{Path: file, Connectors: map[string]*Connector{}, Profiles: map[string]*Profile{}}
	if root := d.document(data); root != nil {
		if top, ok := d.mapping(root, "", topKeys...); ok {
			d.head(s, top)
		}
	}
	if len(d.errs) > 0 {
		d.errs.sortByLine()
		return nil, &d.errs
	}
	return s, nil
}

// head decodes version, connectors and directory.
func (d *decoder) head(s *Set, top fields) {
	if n := top.get("version"); n == nil {
		d.missing(top, "", "version")
	} else if n.Kind != yaml.ScalarNode || n.Value != "1" {
		d.errf(n, "version", "unsupported version %s; this keycard reads version 1", kindName(n))
	} else {
		s.Version = 1
	}

	if n := top.get("connectors"); n == nil {
		d.missing(top, "", "connectors")
	} else {
		d.entries(n, "connectors", func(k, v *yaml.Node) {
			if c := d.connector(k, v); c != nil {
				s.Connectors[c.Name] = c
			}
		})
		if n.Kind == yaml.MappingNode && len(n.Content) == 0 {
			d.errf(n, "connectors", "no connector: keycard needs at least one identity provider")
		}
	}

	if n := top.get("directory"); n != nil {
		if v, ok := d.scalar(n, "directory"); ok {
			s.Directory = v
			if c, ok := s.Connectors[v]; !ok {
				d.errf(n, "directory", "%q is not a connector (connectors: %s)", v, strings.Join(slices.Sorted(maps.Keys(s.Connectors)), ", "))
			} else if c.Type == ConnectorStatic {
				d.static = c
			}
		}
	} else if len(s.Connectors) == 1 {
		for name, c := range s.Connectors {
			s.Directory = name
			if c.Type == ConnectorStatic {
				d.static = c
			}
		}
	} else if top.get("connectors") != nil {
		d.errf(top.node, "directory", "missing: name the connector that is the source of truth for people")
	}
}

func (d *decoder) set(s *Set, root *yaml.Node) {
	top, ok := d.mapping(root, "", topKeys...)
	if !ok {
		return
	}
	d.head(s, top)

	if n := top.get("profiles"); n != nil && !isNull(n) {
		d.profiles(s, n)
	}

	if n := top.get("policies"); n == nil {
		d.missing(top, "", "policies")
	} else {
		d.policies(s, n)
	}

	s.Auditors = d.groupRef(top, "auditors")
	s.Admins = d.groupRef(top, "admins")
	if n := top.get("alerts"); n != nil {
		if f, ok := d.mapping(n, "alerts", "channel"); ok {
			v, cn := d.str(f, "alerts", "channel")
			if v != "" {
				d.channel(cn, "alerts.channel", v)
				s.Alerts.Channel = v
			}
		}
	}
	if n := top.get("reviews"); n != nil && !isNull(n) {
		d.reviews(s, n)
	}
	s.ExpiryWarning = d.duration(top, "", "expiry_warning", DefaultExpiryWarning)
	s.OffboardingSLA = d.duration(top, "", "offboarding_sla", DefaultOffboardingSLA)
	s.OffboardingCheck = d.duration(top, "", "offboarding_check", DefaultOffboardingCheck)
	if s.OffboardingCheck > s.OffboardingSLA {
		d.errf(top.get("offboarding_check"), "offboarding_check", "%s is longer than offboarding_sla %s: a departure could be noticed after the SLA",
			FormatDuration(s.OffboardingCheck), FormatDuration(s.OffboardingSLA))
	}
	s.ChangeApproval = d.boolean(top, "", "change_approval")
	d.conflicts(s, top) // conflicts.go: after policies (names) and admins
}

func (d *decoder) groupRef(top fields, key string) GroupRef {
	n := top.get(key)
	if n == nil {
		return GroupRef{}
	}
	f, ok := d.mapping(n, key, "group")
	if !ok {
		return GroupRef{}
	}
	v, gn := d.str(f, key, "group")
	if v != "" {
		d.staticGroup(gn, key+".group", v)
	}
	return GroupRef{Group: v}
}
