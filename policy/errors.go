package policy

import (
	"fmt"
	"sort"
	"strings"
)

// FieldError is one problem in a policy file, located by line and field path.
type FieldError struct {
	File  string
	Line  int    // 1-based; 0 when the problem has no line (an unreadable file)
	Field string // path such as policies[0].duration.max; empty for syntax errors
	Msg   string
}

func (e FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in a policy file, in line order. Parse
// returns *Errors so that one run of `keycard policy check` shows them all.
type Errors []FieldError

func (es *Errors) Error() string {
	lines := make([]string, len(*es))
	for i, e := range *es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// sortByLine orders errors by line, keeping discovery order within a line.
func (es Errors) sortByLine() {
	sort.SliceStable(es, func(i, j int) bool { return es[i].Line < es[j].Line })
}
