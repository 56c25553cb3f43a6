package bot

import (
	"strings"
	"testing"
)

// TestRouteTableBuilds pins that the table is built without a duplicate
// key: routeTable panics on one, so merely building it is the check.
func TestRouteTableBuilds(t *testing.T) {
	if got := len(routeTable()); got == 0 {
		t.Fatal("empty route table")
	}
}

// TestRoutesAddRefusesDuplicate: a second route for the same key must fail
// loudly at construction instead of replacing the first one.
func TestRoutesAddRefusesDuplicate(t *testing.T) {
	tab := routes{}
	tab.add(kindCommand, cmdAccess, route{})
	defer func() {
		r := recover()
		if r == nil {
			t.Fatal("add accepted a duplicate route")
		}
		if msg, _ := r.(string); !strings.Contains(msg, cmdAccess) {
			t.Fatalf("panic %v does not name the duplicate", r)
		}
	}()
	tab.add(kindCommand, cmdAccess, route{})
}
