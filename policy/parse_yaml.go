package policy

// The YAML reading helpers of the policy decoder: typed fields with their
// line numbers, and the checks of names, channels and e-mail addresses.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
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

// optScalar reads an optional scalar key of f; ok is false when the key is
// absent or not a scalar (reported), and the caller keeps its default.
func (d *decoder) optScalar(f fields, field, key string) (string, *yaml.Node, bool) {
	n := f.get(key)
	if n == nil {
		return "", nil, false
	}
	v, ok := d.scalar(n, join(field, key))
	return v, n, ok
}

// optStr reads an optional string key of f.
func (d *decoder) optStr(f fields, field, key, def string) string {
	v, n, ok := d.optScalar(f, field, key)
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
	v, n, ok := d.optScalar(f, field, key)
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
