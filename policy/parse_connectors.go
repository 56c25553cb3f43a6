package policy

// Parsing of `connectors`: identity-provider connections, their scope and
// the static directory's users and groups.

import (
	"fmt"
	"path"
	"strings"

	"go.yaml.in/yaml/v3"

	"keycard/access"
)

var knownStatuses = []access.UserStatus{
	access.StatusActive, access.StatusStaged, access.StatusProvisioned, access.StatusRecovery,
	access.StatusPasswordExpired, access.StatusLockedOut, access.StatusSuspended, access.StatusDeprovisioned,
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

func containsStatus(s access.UserStatus) bool {
	for _, k := range knownStatuses {
		if k == s {
			return true
		}
	}
	return false
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
