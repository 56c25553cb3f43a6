package oktafake

import (
	"fmt"
	"strings"
)

// clause is one `attr op value` comparison of an Okta SCIM-style expression
// (Okta API "Filtering" and "Search": eq, sw, co, pr, gt/ge/lt/le).
type clause struct {
	attr, op, value string
}

// expr is an OR of ANDs of clauses: `and` binds tighter than `or`, as in
// Okta's expression language. Parentheses are accepted and ignored, which is
// exact for the flat expressions keycard and the SDK examples send.
type expr [][]clause

// parseExpr parses expressions such as
//
//	profile.email eq "a@x.com"
//	eventType eq "user.lifecycle.deactivate" or eventType eq "user.lifecycle.suspend"
//	status eq "ACTIVE" and profile.department eq "Eng"
func parseExpr(s string) (expr, error) {
	toks, err := tokenize(s)
	if err != nil {
		return nil, err
	}
	var out expr
	var cur []clause
	for i := 0; i < len(toks); {
		if len(toks)-i < 2 {
			return nil, fmt.Errorf("incomplete expression near %q", toks[i].text)
		}
		c := clause{attr: toks[i].text, op: strings.ToLower(toks[i+1].text)}
		i += 2
		switch c.op {
		case "pr":
		case "eq", "sw", "co", "gt", "ge", "lt", "le":
			if i >= len(toks) {
				return nil, fmt.Errorf("operator %s needs a value", c.op)
			}
			c.value = toks[i].text
			i++
		default:
			return nil, fmt.Errorf("unsupported operator %q", c.op)
		}
		cur = append(cur, c)
		if i == len(toks) {
			break
		}
		switch strings.ToLower(toks[i].text) {
		case "and":
		case "or":
			out = append(out, cur)
			cur = nil
		default:
			return nil, fmt.Errorf("expected and/or, got %q", toks[i].text)
		}
		i++
		if i == len(toks) {
			return nil, fmt.Errorf("expression ends with a conjunction")
		}
	}
	if len(cur) == 0 {
		return nil, fmt.Errorf("empty expression")
	}
	return append(out, cur), nil
}

type token struct {
	text   string
	quoted bool
}

func tokenize(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		switch ch := s[i]; {
		case ch == ' ' || ch == '\t' || ch == '(' || ch == ')':
			i++
		case ch == '"':
			var b strings.Builder
			i++
			closed := false
			for i < len(s) {
				if s[i] == '\\' && i+1 < len(s) {
					b.WriteByte(s[i+1])
					i += 2
					continue
				}
				if s[i] == '"' {
					closed = true
					i++
					break
				}
				b.WriteByte(s[i])
				i++
			}
			if !closed {
				return nil, fmt.Errorf("unterminated string")
			}
			toks = append(toks, token{text: b.String(), quoted: true})
		default:
			j := i
			for j < len(s) && s[j] != ' ' && s[j] != '\t' && s[j] != '(' && s[j] != ')' {
				j++
			}
			toks = append(toks, token{text: s[i:j]})
			i = j
		}
	}
	return toks, nil
}

// match evaluates e against attributes read by get. foldCase makes string
// comparison case-insensitive (Okta: `search` values are case-insensitive,
// `filter` values are case-sensitive).
func (e expr) match(get func(attr string) (string, bool), foldCase bool) bool {
	for _, and := range e {
		ok := true
		for _, c := range and {
			if !c.match(get, foldCase) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func (c clause) match(get func(string) (string, bool), foldCase bool) bool {
	v, ok := get(c.attr)
	if c.op == "pr" {
		return ok && v != ""
	}
	if !ok {
		return false
	}
	want := c.value
	if foldCase {
		v, want = strings.ToLower(v), strings.ToLower(want)
	}
	switch c.op {
	case "eq":
		return v == want
	case "sw":
		return strings.HasPrefix(v, want)
	case "co":
		return strings.Contains(v, want)
	case "gt":
		return v > want
	case "ge":
		return v >= want
	case "lt":
		return v < want
	case "le":
		return v <= want
	}
	return false
}
