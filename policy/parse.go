package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // reviews.timezone must resolve in images without /usr/share/zoneinfo

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"

	"keycard/access"
)

// nameRE is the shape of policy, connector and profile names: they appear in
// slash commands, CSV cells and file names, so they stay lower-case ASCII
// words joined by hyphens (like DNS labels, which is also why 63 is the limit).
var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

const maxNameLen = 63

// reservedNames are export kinds (`/export KIND`, SPEC "Other exports": "the
// kind words are reserved as policy names") and `/access` subcommands: a
// policy with one of these names could not be addressed by those commands.
var reservedNames = map[string]string{
	"events": "an export kind", "holders": "an export kind", "campaign": "an export kind",
	"policies": "an export kind", "jobs": "an export kind", "access": "an export kind", "privileged": "an export kind",
	"list": "an /access subcommand", "revoke": "an /access subcommand",
	"help": "an /access subcommand", "review": "an /access subcommand",
}

// channelRE accepts a Slack channel name (lower case, digits, '-', '_', at
// most 80 characters: Slack's channel-name rules) or a channel id.
var channelRE = regexp.MustCompile(`^(#[a-z0-9_][a-z0-9_-]{0,79}|[CG][A-Z0-9]{8,})$`)

// maxNodes bounds the work of walking the YAML tree: aliases can make a small
// file expand into a huge tree ("billion laughs").
const maxNodes = 200000

var knownStatuses = []access.UserStatus{
	access.StatusActive, access.StatusStaged, access.StatusProvisioned, access.StatusRecovery,
	access.StatusPasswordExpired, access.StatusLockedOut, access.StatusSuspended, access.StatusDeprovisioned,
}

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

type decoder struct {
	file  string
	errs  Errors
	nodes int
	// static directory, when the directory connector is static: people and
	// groups named by rules must exist in it.
	static *Connector
}

func (d *decoder) errf(n *yaml.Node, field, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.errs = append(d.errs, FieldError{File: d.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// document decodes exactly one YAML document and returns its top node.
func (d *decoder) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.errs = append(d.errs, FieldError{File: d.file, Line: 1, Msg: "the file is empty; it needs at least version, connectors and policies"})
			return nil
		}
		d.syntax(err)
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		d.errs = append(d.errs, FieldError{File: d.file, Line: extra.Line, Msg: "a second YAML document (---); the policy file holds exactly one"})
	} else if !errors.Is(err, io.EOF) {
		d.syntax(err)
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		return d.resolve(doc.Content[0])
	}
	return d.resolve(&doc)
}

func (d *decoder) syntax(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	d.errs = append(d.errs, FieldError{File: d.file, Line: line, Msg: "YAML syntax: " + msg})
}

// resolve follows aliases and counts visited nodes against maxNodes.
func (d *decoder) resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	d.nodes++
	if d.nodes == maxNodes {
		d.errf(n, "", "the file expands to more than %d YAML nodes (aliases?); refusing to read further", maxNodes)
	}
	if d.nodes >= maxNodes || n == nil || n.Kind == yaml.AliasNode {
		return nil
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

func kindName(n *yaml.Node) string {
	switch {
	case n == nil:
		return "nothing"
	case isNull(n):
		return "an empty value"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("%q", n.Value)
}

// fields is a decoded mapping: value nodes by key, plus the mapping itself
// (for the line of a missing key).
type fields struct {
	node *yaml.Node
	m    map[string]*yaml.Node
}

func (f fields) get(key string) *yaml.Node {
	if f.m == nil {
		return nil
	}
	return f.m[key]
}

// mapping checks that n is a mapping whose keys are all in allowed, and
// returns its values by key. ok is false when n is not a mapping.
func (d *decoder) mapping(n *yaml.Node, field string, allowed ...string) (fields, bool) {
	if n == nil || n.Kind != yaml.MappingNode {
		d.errf(n, field, "expected a mapping (key: value), got %s", kindName(n))
		return fields{node: n}, false
	}
	f := fields{node: n, m: map[string]*yaml.Node{}}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := d.resolve(n.Content[i]), n.Content[i+1]
		if k == nil {
			return f, false
		}
		if k.Kind != yaml.ScalarNode {
			d.errf(k, field, "keys must be plain words, got %s", kindName(k))
			continue
		}
		if !contains(allowed, k.Value) {
			d.errf(k, join(field, k.Value), "unknown key %q (known keys: %s)", k.Value, strings.Join(allowed, ", "))
			continue
		}
		if _, dup := f.m[k.Value]; dup {
			d.errf(k, join(field, k.Value), "key given twice")
			continue
		}
		rv := d.resolve(v)
		if rv == nil {
			return f, false
		}
		// Keep key lines for empty values (a null node has the key's line anyway).
		f.m[k.Value] = rv
	}
	return f, true
}

// entries iterates a mapping whose keys are names chosen by the user
// (connectors, profiles), in file order.
func (d *decoder) entries(n *yaml.Node, field string, each func(key *yaml.Node, val *yaml.Node)) {
	if n == nil || n.Kind != yaml.MappingNode {
		d.errf(n, field, "expected a mapping of names, got %s", kindName(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := d.resolve(n.Content[i]), d.resolve(n.Content[i+1])
		if k == nil || v == nil {
			return
		}
		if k.Kind != yaml.ScalarNode {
			d.errf(k, field, "names must be plain words, got %s", kindName(k))
			continue
		}
		if seen[k.Value] {
			d.errf(k, join(field, k.Value), "name given twice")
			continue
		}
		seen[k.Value] = true
		each(k, v)
	}
}

func (d *decoder) items(n *yaml.Node, field string) []*yaml.Node {
	if n == nil || n.Kind != yaml.SequenceNode {
		d.errf(n, field, "expected a list, got %s", kindName(n))
		return nil
	}
	out := make([]*yaml.Node, 0, len(n.Content))
	for _, c := range n.Content {
		if c = d.resolve(c); c == nil {
			return out
		}
		out = append(out, c)
	}
	return out
}

func (d *decoder) missing(f fields, field, key string) {
	d.errf(f.node, join(field, key), "missing (required)")
}

// scalar returns the text of a scalar value.
func (d *decoder) scalar(n *yaml.Node, field string) (string, bool) {
	if n == nil || n.Kind != yaml.ScalarNode || isNull(n) {
		d.errf(n, field, "expected a value, got %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

// str reads a required non-empty string key of f.
func (d *decoder) str(f fields, field, key string) (string, *yaml.Node) {
	n := f.get(key)
	if n == nil {
		d.missing(f, field, key)
		return "", f.node
	}
	v, ok := d.scalar(n, join(field, key))
	if ok && strings.TrimSpace(v) == "" {
		d.errf(n, join(field, key), "must not be empty")
	}
	return strings.TrimSpace(v), n
}

// optStr reads an optional string key of f.
func (d *decoder) optStr(f fields, field, key, def string) string {
	n := f.get(key)
	if n == nil {
		return def
	}
	v, ok := d.scalar(n, join(field, key))
	if !ok {
		return def
	}
	if strings.TrimSpace(v) == "" {
		d.errf(n, join(field, key), "must not be empty (leave the key out for the default)")
		return def
	}
	return strings.TrimSpace(v)
}

func (d *decoder) boolean(f fields, field, key string) bool {
	n := f.get(key)
	if n == nil {
		return false
	}
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		d.errf(n, join(field, key), "expected true or false, got %s", kindName(n))
		return false
	}
	b, _ := strconv.ParseBool(n.Value)
	return b
}

func (d *decoder) duration(f fields, field, key string, def time.Duration) time.Duration {
	n := f.get(key)
	if n == nil {
		return def
	}
	v, ok := d.scalar(n, join(field, key))
	if !ok {
		return def
	}
	dur, err := ParseDuration(v)
	if err != nil {
		d.errf(n, join(field, key), "%v", err)
		return def
	}
	return dur
}

// strList reads one string or a list of strings.
func (d *decoder) strList(n *yaml.Node, field string) []string {
	if n != nil && n.Kind == yaml.ScalarNode && !isNull(n) {
		if strings.TrimSpace(n.Value) == "" {
			d.errf(n, field, "must not be empty")
			return nil
		}
		return []string{strings.TrimSpace(n.Value)}
	}
	if n == nil || n.Kind != yaml.SequenceNode {
		d.errf(n, field, "expected a value or a list of values, got %s", kindName(n))
		return nil
	}
	var out []string
	for i, c := range d.items(n, field) {
		if v, ok := d.scalar(c, fmt.Sprintf("%s[%d]", field, i)); ok {
			if strings.TrimSpace(v) == "" {
				d.errf(c, fmt.Sprintf("%s[%d]", field, i), "must not be empty")
				continue
			}
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

// where reads an attribute condition {attr: value | [values]}.
func (d *decoder) where(n *yaml.Node, field string) map[string][]string {
	out := map[string][]string{}
	if isNull(n) {
		return out
	}
	d.entries(n, field, func(k, v *yaml.Node) {
		vals := d.strList(v, join(field, k.Value))
		if v.Kind == yaml.SequenceNode && len(v.Content) == 0 {
			d.errf(v, join(field, k.Value), "an empty list matches nobody; list the accepted values")
		}
		out[k.Value] = vals
	})
	return out
}

func (d *decoder) name(n *yaml.Node, field, what, v string) {
	switch {
	case len(v) > maxNameLen:
		d.errf(n, field, "%s name %q is longer than %d characters", what, v, maxNameLen)
	case !nameRE.MatchString(v):
		d.errf(n, field, "%s name %q must be lower-case letters, digits and inner hyphens ([a-z0-9-])", what, v)
	}
}

func (d *decoder) channel(n *yaml.Node, field, v string) {
	if !channelRE.MatchString(v) {
		d.errf(n, field, "%q is not a Slack channel: write \"#name\" (quoted: # starts a YAML comment) or a channel id like C0123456789", v)
	}
}

func (d *decoder) email(n *yaml.Node, field, v string) {
	at := strings.LastIndexByte(v, '@')
	if at <= 0 || at == len(v)-1 || strings.ContainsAny(v, " \t,;<>") {
		d.errf(n, field, "%q is not an email address", v)
	}
}

func (d *decoder) schedule(f fields, field string) string {
	v, n := d.str(f, field, "schedule")
	if v == "" {
		return ""
	}
	if _, err := cron.ParseStandard(v); err != nil {
		d.errf(n, join(field, "schedule"), "bad cron schedule %q: %v (5 fields \"min hour dom month dow\", or @daily, @every 1h)", v, err)
	}
	return v
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
				d.errf(n, "directory", "%q is not a connector (connectors: %s)", v, strings.Join(sortedKeys(s.Connectors), ", "))
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

	if n := top.get("policies"); n == nil {
		d.missing(top, "", "policies")
	} else {
		items := d.items(n, "policies")
		if n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
			d.errf(n, "policies", "no policy: nobody could request anything")
		}
		seen := map[string]int{}
		for i, item := range items {
			p := d.policy(s, i, item)
			if p == nil {
				continue
			}
			if p.Name != "" {
				if first, dup := seen[p.Name]; dup {
					d.errf(item, fmt.Sprintf("policies[%d].name", i), "policy %q is already defined at line %d", p.Name, first)
				} else {
					seen[p.Name] = p.Line
				}
			}
			s.Policies = append(s.Policies, p)
		}
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

// staticGroup checks, when the directory is static, that a group exists in it.
func (d *decoder) staticGroup(n *yaml.Node, field, g string) {
	if d.static == nil {
		return
	}
	for _, sg := range d.static.Groups {
		if sg.Name == g {
			return
		}
	}
	d.errf(n, field, "group %q is not a group of the static directory %q", g, d.static.Name)
}

func (d *decoder) staticUser(n *yaml.Node, field, email string) {
	if d.static == nil {
		return
	}
	for _, u := range d.static.Users {
		if strings.EqualFold(u.Email, email) {
			return
		}
	}
	d.errf(n, field, "%s is not a user of the static directory %q", email, d.static.Name)
}

func (d *decoder) connector(k, v *yaml.Node) *Connector {
	field := "connectors." + k.Value
	d.name(k, field, "connector", k.Value)
	f, ok := d.mapping(v, field, "type", "scope", "manager_attribute", "users", "groups")
	if !ok {
		return nil
	}
	c := &Connector{Name: k.Value, Line: k.Line}
	typ, tn := d.str(f, field, "type")
	switch typ {
	case ConnectorOkta, ConnectorEntra, ConnectorJumpCloud, ConnectorStatic:
		c.Type = typ
	case "":
	default:
		d.errf(tn, field+".type", "unknown connector type %q (known: okta, entra, jumpcloud, static)", typ)
	}
	if sn := f.get("scope"); sn == nil {
		d.errf(f.node, field+".scope.groups", "missing: a connector with no scope may change nothing; list the groups it may change, e.g. scope: {groups: [\"app-*\"]}")
	} else if sf, ok := d.mapping(sn, field+".scope", "groups"); ok {
		gn := sf.get("groups")
		if gn == nil {
			d.errf(sn, field+".scope.groups", "missing: a connector with no scope may change nothing; list the groups it may change, e.g. [\"app-*\"]")
		} else {
			c.Scope = d.strList(gn, field+".scope.groups")
			if gn.Kind == yaml.SequenceNode && len(gn.Content) == 0 {
				d.errf(gn, field+".scope.groups", "empty: a connector with no scope may change nothing; list the groups it may change")
			}
			for _, g := range c.Scope {
				if _, err := path.Match(g, ""); err != nil {
					d.errf(gn, field+".scope.groups", "bad group glob %q: %v", g, err)
				}
			}
		}
	}
	c.ManagerAttribute = d.optStr(f, field, "manager_attribute", DefaultManagerAttribute)
	if mn := f.get("manager_attribute"); mn != nil && (c.Type == ConnectorEntra || c.Type == ConnectorJumpCloud) {
		// Entra has a manager relationship and JumpCloud a manager field:
		// neither reads the manager from a profile attribute.
		d.errf(mn, field+".manager_attribute", "only okta and static connectors read the manager from an attribute; %s uses %s", c.Type, managerSource[c.Type])
	}
	un, gn := f.get("users"), f.get("groups")
	if idp, ok := idpNames[c.Type]; ok {
		if un != nil {
			d.errf(un, field+".users", "only a static connector lists its users; %s connector reads them from %s", article(c.Type), idp)
		}
		if gn != nil {
			d.errf(gn, field+".groups", "only a static connector lists its groups; %s connector reads them from %s", article(c.Type), idp)
		}
		return c
	}
	if c.Type != ConnectorStatic {
		return c
	}
	emails := map[string]int{}
	type mgr struct {
		n     *yaml.Node
		field string
	}
	managers := map[int]mgr{}
	if un != nil && !isNull(un) {
		for i, item := range d.items(un, field+".users") {
			uf := fmt.Sprintf("%s.users[%d]", field, i)
			m, ok := d.mapping(item, uf, "email", "name", "manager", "status", "attributes")
			if !ok {
				continue
			}
			u := StaticUser{Status: access.StatusActive, Attributes: map[string]string{}}
			var en *yaml.Node
			u.Email, en = d.str(m, uf, "email")
			if u.Email != "" {
				d.email(en, uf+".email", u.Email)
				key := strings.ToLower(u.Email)
				if line, dup := emails[key]; dup {
					d.errf(en, uf+".email", "%s is already a user (line %d)", u.Email, line)
				} else {
					emails[key] = en.Line
				}
			}
			u.Name = d.optStr(m, uf, "name", "")
			if mn := m.get("manager"); mn != nil {
				u.Manager = d.optStr(m, uf, "manager", "")
				managers[len(c.Users)] = mgr{mn, uf + ".manager"}
			}
			if sn := m.get("status"); sn != nil {
				st := access.UserStatus(strings.ToUpper(d.optStr(m, uf, "status", "ACTIVE")))
				if !containsStatus(st) {
					d.errf(sn, uf+".status", "unknown status %q (Okta's: ACTIVE, STAGED, PROVISIONED, RECOVERY, PASSWORD_EXPIRED, LOCKED_OUT, SUSPENDED, DEPROVISIONED)", sn.Value)
				} else {
					u.Status = st
				}
			}
			if an := m.get("attributes"); an != nil && !isNull(an) {
				d.entries(an, uf+".attributes", func(ak, av *yaml.Node) {
					if v, ok := d.scalar(av, uf+".attributes."+ak.Value); ok {
						u.Attributes[ak.Value] = v
					}
				})
			}
			c.Users = append(c.Users, u)
		}
	}
	for i, m := range managers {
		u := c.Users[i]
		if u.Manager == "" {
			continue
		}
		if _, ok := emails[strings.ToLower(u.Manager)]; !ok {
			d.errf(m.n, m.field, "manager %s is not a user of this connector", u.Manager)
		} else if strings.EqualFold(u.Manager, u.Email) {
			d.errf(m.n, m.field, "%s cannot be their own manager", u.Email)
		}
	}
	groups := map[string]bool{}
	if gn != nil && !isNull(gn) {
		for i, item := range d.items(gn, field+".groups") {
			gf := fmt.Sprintf("%s.groups[%d]", field, i)
			m, ok := d.mapping(item, gf, "name", "members")
			if !ok {
				continue
			}
			g := StaticGroup{}
			var nn *yaml.Node
			g.Name, nn = d.str(m, gf, "name")
			if g.Name != "" && groups[g.Name] {
				d.errf(nn, gf+".name", "group %q is already defined", g.Name)
			}
			groups[g.Name] = true
			if mn := m.get("members"); mn != nil && !isNull(mn) {
				for j, it := range d.items(mn, gf+".members") {
					mf := fmt.Sprintf("%s.members[%d]", gf, j)
					e, ok := d.scalar(it, mf)
					if !ok {
						continue
					}
					if _, known := emails[strings.ToLower(e)]; !known {
						d.errf(it, mf, "%s is not a user of this connector", e)
					}
					g.Members = append(g.Members, e)
				}
			}
			c.Groups = append(c.Groups, g)
		}
	}
	return c
}

func (d *decoder) policy(s *Set, i int, n *yaml.Node) *Policy {
	field := fmt.Sprintf("policies[%d]", i)
	f, ok := d.mapping(n, field, "name", "app", "role", "group", "connector", "privileged", "eligible",
		"approval", "duration", "justification", "break_glass", "request_ttl", "remind_after",
		"escalate_after", "escalate_to", "extend")
	if !ok {
		return nil
	}
	p := &Policy{Line: n.Line, JustificationRequired: true}
	var nn *yaml.Node
	p.Name, nn = d.str(f, field, "name")
	if p.Name != "" {
		d.name(nn, field+".name", "policy", p.Name)
		if why, ok := reservedNames[p.Name]; ok {
			d.errf(nn, field+".name", "%q is reserved (%s); pick another name", p.Name, why)
		}
	}
	p.App, _ = d.str(f, field, "app")
	p.Role, _ = d.str(f, field, "role")
	var gn *yaml.Node
	p.Group, gn = d.str(f, field, "group")

	p.Connector = s.Directory
	if n := f.get("connector"); n != nil {
		p.Connector = d.optStr(f, field, "connector", s.Directory)
		if _, ok := s.Connectors[p.Connector]; !ok {
			d.errf(n, field+".connector", "%q is not a connector (connectors: %s)", p.Connector, strings.Join(sortedKeys(s.Connectors), ", "))
		}
	}
	if c, ok := s.Connectors[p.Connector]; ok && p.Group != "" && len(c.Scope) > 0 && !c.InScope(p.Group) {
		d.errf(gn, field+".group", "group %q is outside the scope of connector %q (%s): keycard would refuse to change it",
			p.Group, c.Name, strings.Join(c.Scope, ", "))
	}
	p.Privileged = d.boolean(f, field, "privileged")

	if en := f.get("eligible"); en == nil {
		d.missing(f, field, "eligible")
	} else {
		p.Eligible = d.strList(en, field+".eligible")
		if en.Kind == yaml.SequenceNode && len(en.Content) == 0 {
			d.errf(en, field+".eligible", "empty: nobody could request this; name a profile (e.g. everyone: {})")
		}
		for _, name := range p.Eligible {
			if _, ok := s.Profiles[name]; !ok {
				d.errf(en, field+".eligible", "unknown profile %q (profiles: %s)", name, strings.Join(sortedKeys(s.Profiles), ", "))
			}
		}
	}

	if an := f.get("approval"); an == nil {
		d.missing(f, field, "approval")
	} else if an.Kind == yaml.ScalarNode && an.Value == "auto" {
		p.Auto = true
	} else if an.Kind == yaml.SequenceNode {
		if len(an.Content) == 0 {
			d.errf(an, field+".approval", "an empty approval chain; list the steps, or write approval: auto for no human step")
		}
		p.Approval = d.rules(an, field+".approval")
	} else {
		d.errf(an, field+".approval", "expected a list of steps or auto, got %s", kindName(an))
	}

	if dn := f.get("duration"); dn == nil {
		d.errf(f.node, field+".duration.max", "missing (required): every grant has an end")
	} else if df, ok := d.mapping(dn, field+".duration", "default", "max"); ok {
		if df.get("max") == nil {
			d.errf(dn, field+".duration.max", "missing (required): every grant has an end")
		}
		p.MaxDuration = d.duration(df, field+".duration", "max", 0)
		p.DefaultDuration = d.duration(df, field+".duration", "default", p.MaxDuration)
		if p.MaxDuration > 0 && p.DefaultDuration > p.MaxDuration {
			d.errf(df.get("max"), field+".duration.max", "%s is shorter than default %s",
				FormatDuration(p.MaxDuration), FormatDuration(p.DefaultDuration))
		}
	}

	if jn := f.get("justification"); jn != nil {
		switch v, _ := d.scalar(jn, field+".justification"); v {
		case "required":
			p.JustificationRequired = true
		case "optional":
			p.JustificationRequired = false
		case "":
		default:
			d.errf(jn, field+".justification", "%q: write required or optional", v)
		}
	}
	p.BreakGlass = d.boolean(f, field, "break_glass")
	if p.BreakGlass {
		bn := f.get("break_glass")
		if p.MaxDuration > MaxBreakGlass {
			d.errf(bn, field+".break_glass", "a break-glass policy needs a short duration.max, at most %s (it is %s)",
				FormatDuration(MaxBreakGlass), FormatDuration(p.MaxDuration))
		}
		if !p.JustificationRequired {
			d.errf(f.get("justification"), field+".justification", "a break-glass policy always requires a justification")
		}
	}
	p.RequestTTL = d.duration(f, field, "request_ttl", DefaultRequestTTL)
	p.RemindAfter = d.duration(f, field, "remind_after", DefaultRemindAfter)
	p.EscalateAfter = d.duration(f, field, "escalate_after", 0)
	if en := f.get("escalate_to"); en != nil {
		if en.Kind != yaml.SequenceNode || len(en.Content) == 0 {
			d.errf(en, field+".escalate_to", "expected a non-empty list of approver rules, got %s", kindName(en))
		} else {
			p.EscalateTo = d.rules(en, field+".escalate_to")
		}
	}
	switch {
	case p.EscalateAfter > 0 && f.get("escalate_to") == nil:
		d.errf(f.get("escalate_after"), field+".escalate_after", "set, but escalate_to is missing: who should be added?")
	case p.EscalateAfter == 0 && f.get("escalate_to") != nil:
		d.errf(f.get("escalate_to"), field+".escalate_to", "set, but escalate_after is missing: when should they be added?")
	case p.EscalateAfter > 0 && p.EscalateAfter >= p.RequestTTL:
		d.errf(f.get("escalate_after"), field+".escalate_after", "%s is not shorter than request_ttl %s: the request would time out first",
			FormatDuration(p.EscalateAfter), FormatDuration(p.RequestTTL))
	}
	if p.Auto && (f.get("escalate_to") != nil || f.get("escalate_after") != nil) {
		d.errf(f.get("approval"), field+".approval", "auto approval has no step to escalate; drop escalate_after/escalate_to")
	}
	if xn := f.get("extend"); xn != nil {
		if xf, ok := d.mapping(xn, field+".extend", "max_total"); ok {
			if xf.get("max_total") == nil {
				d.missing(xf, field+".extend", "max_total")
			}
			p.ExtendMaxTotal = d.duration(xf, field+".extend", "max_total", 0)
			if p.ExtendMaxTotal > 0 && p.ExtendMaxTotal < p.MaxDuration {
				d.errf(xf.get("max_total"), field+".extend.max_total", "%s is shorter than duration.max %s",
					FormatDuration(p.ExtendMaxTotal), FormatDuration(p.MaxDuration))
			}
		}
	}
	return p
}

// rules reads a list of approver rules.
func (d *decoder) rules(n *yaml.Node, field string) []Rule {
	var out []Rule
	for i, item := range d.items(n, field) {
		if r, ok := d.rule(item, fmt.Sprintf("%s[%d]", field, i)); ok {
			out = append(out, r)
		}
	}
	return out
}

const ruleForms = "manager, group: NAME, user: EMAIL, users: [EMAIL, ...]"

// rule reads one approver rule: `manager`, `group: g`, `user: e`, `users: [a, b]`.
func (d *decoder) rule(n *yaml.Node, field string) (Rule, bool) {
	if n.Kind == yaml.ScalarNode {
		if n.Value == "manager" {
			return Rule{Kind: RuleManager}, true
		}
		if n.Value == "auto" {
			d.errf(n, field, "auto is not a step; write approval: auto instead of a list")
			return Rule{}, false
		}
		d.errf(n, field, "unknown approval rule %s (forms: %s)", kindName(n), ruleForms)
		return Rule{}, false
	}
	if n.Kind != yaml.MappingNode || len(n.Content) != 2 {
		d.errf(n, field, "unknown approval rule form: %s with %d keys (forms: %s)", kindName(n), len(n.Content)/2, ruleForms)
		return Rule{}, false
	}
	f, ok := d.mapping(n, field, "group", "user", "users")
	if !ok {
		return Rule{}, false
	}
	switch {
	case f.get("group") != nil:
		g, gn := d.str(f, field, "group")
		if g == "" {
			return Rule{}, false
		}
		d.staticGroup(gn, field+".group", g)
		return Rule{Kind: RuleGroup, Group: g}, true
	case f.get("user") != nil:
		e, en := d.str(f, field, "user")
		if e == "" {
			return Rule{}, false
		}
		d.email(en, field+".user", e)
		d.staticUser(en, field+".user", e)
		return Rule{Kind: RuleUser, Users: []string{e}}, true
	case f.get("users") != nil:
		un := f.get("users")
		es := d.strList(un, field+".users")
		if len(es) == 0 {
			d.errf(un, field+".users", "empty: list who may approve")
			return Rule{}, false
		}
		for _, e := range es {
			d.email(un, field+".users", e)
			d.staticUser(un, field+".users", e)
		}
		return Rule{Kind: RuleUsers, Users: es}, true
	}
	return Rule{}, false
}

func (d *decoder) reviews(s *Set, n *yaml.Node) {
	f, ok := d.mapping(n, "reviews", "timezone", "admin_access_report", "contractor_expiry", "compliance_package", "certification")
	if !ok {
		return
	}
	r := &s.Reviews
	if tn := f.get("timezone"); tn != nil {
		if v, ok := d.scalar(tn, "reviews.timezone"); ok {
			loc, err := time.LoadLocation(v)
			if err != nil || v == "" || strings.EqualFold(v, "local") {
				d.errf(tn, "reviews.timezone", "unknown time zone %q: use an IANA name such as UTC or Europe/Berlin", v)
			} else {
				r.Timezone, r.TimezoneName = loc, v
			}
		}
	}
	r.AdminAccessReport = d.reportJob(f, "reviews", "admin_access_report")
	r.CompliancePackage = d.reportJob(f, "reviews", "compliance_package")
	if cn := f.get("contractor_expiry"); cn != nil {
		field := "reviews.contractor_expiry"
		if cf, ok := d.mapping(cn, field, "schedule", "within", "contractors"); ok {
			j := &ContractorJob{Schedule: d.schedule(cf, field)}
			j.Within = d.duration(cf, field, "within", 7*24*time.Hour)
			if wn := cf.get("contractors"); wn == nil {
				d.missing(cf, field, "contractors")
			} else {
				j.Contractors = d.where(wn, field+".contractors")
				if len(j.Contractors) == 0 {
					d.errf(wn, field+".contractors", "empty: this would treat everyone as a contractor; give the attribute, e.g. {userType: Contractor}")
				}
			}
			r.ContractorExpiry = j
		}
	}
	if cn := f.get("certification"); cn != nil {
		field := "reviews.certification"
		cf, ok := d.mapping(cn, field, "schedule", "policies", "reviewer", "channel", "due", "on_timeout")
		if !ok {
			return
		}
		j := &CertificationJob{Schedule: d.schedule(cf, field), Reviewer: Rule{Kind: RuleManager}, OnTimeout: OnTimeoutKeepAndFlag}
		if pn := cf.get("policies"); pn == nil {
			d.missing(cf, field, "policies")
		} else if pf, ok := d.mapping(pn, field+".policies", "privileged", "names"); ok {
			j.Privileged = d.boolean(pf, field+".policies", "privileged")
			if nn := pf.get("names"); nn != nil {
				j.Names = d.strList(nn, field+".policies.names")
				for _, name := range j.Names {
					if _, ok := s.Policy(name); !ok {
						d.errf(nn, field+".policies.names", "unknown policy %q", name)
					}
				}
			}
			if !j.Privileged && len(j.Names) == 0 {
				d.errf(pn, field+".policies", "selects no policy: write {privileged: true} or {names: [...]}")
			}
		}
		if rn := cf.get("reviewer"); rn != nil {
			if rule, ok := d.rule(rn, field+".reviewer"); ok {
				j.Reviewer = rule
			}
		}
		if chn := cf.get("channel"); chn != nil {
			j.Channel = d.optStr(cf, field, "channel", "")
			if j.Channel != "" {
				d.channel(chn, field+".channel", j.Channel)
			}
		}
		j.Due = d.duration(cf, field, "due", DefaultCertificationDue)
		if on := cf.get("on_timeout"); on != nil {
			switch v, _ := d.scalar(on, field+".on_timeout"); v {
			case OnTimeoutRevoke, OnTimeoutEscalate, OnTimeoutKeepAndFlag:
				j.OnTimeout = v
			case "":
			default:
				d.errf(on, field+".on_timeout", "%q: write revoke, escalate or keep-and-flag", v)
			}
		}
		r.Certification = j
	}
}

func (d *decoder) reportJob(parent fields, pfield, key string) *ReportJob {
	n := parent.get(key)
	if n == nil {
		return nil
	}
	field := join(pfield, key)
	f, ok := d.mapping(n, field, "schedule", "channel")
	if !ok {
		return nil
	}
	j := &ReportJob{Schedule: d.schedule(f, field)}
	var cn *yaml.Node
	j.Channel, cn = d.str(f, field, "channel")
	if j.Channel != "" {
		d.channel(cn, field+".channel", j.Channel)
	}
	return j
}

func join(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func containsStatus(s access.UserStatus) bool {
	for _, k := range knownStatuses {
		if k == s {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// idpNames names the identity provider behind each live connector type.
var idpNames = map[string]string{
	ConnectorOkta:      "Okta",
	ConnectorEntra:     "Microsoft Entra ID",
	ConnectorJumpCloud: "JumpCloud",
}

// managerSource says where a live connector finds a person's manager.
var managerSource = map[string]string{
	ConnectorEntra:     "the manager relationship in Microsoft Graph",
	ConnectorJumpCloud: "the user's manager field (a user id)",
}

// article is "an okta" or "a jumpcloud": the type with its article.
func article(typ string) string {
	if strings.IndexByte("aeiou", typ[0]) >= 0 {
		return "an " + typ
	}
	return "a " + typ
}
