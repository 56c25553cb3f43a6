package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Long command-line work shows a progress bar on stderr only when stderr is
// a terminal; piped or in CI it prints nothing there, and stdout is the same
// either way (issue 14 item 5).
func TestProgressOnlyOnATerminal(t *testing.T) {
	clearEnv(t)
	path := seedDB(t)
	backups := t.TempDir()
	cmds := []struct {
		name string
		args []string
	}{
		{"audit verify", []string{"audit", "verify", "--db", path}},
		{"export", []string{"export", "--kind", "events", "--from", "2026-11-01", "--to", "2026-11-03", "--db", path}},
		{"backup", []string{"backup", "--db", path, "--dir", backups}},
	}
	for _, c := range cmds {
		t.Run(c.name, func(t *testing.T) {
			code, plain, stderr := runCLI(t, c.args...)
			if code != 0 || stderr != "" {
				t.Fatalf("not a terminal: exit %d, stderr %q, want nothing on stderr", code, stderr)
			}
			isTerminal = func(io.Writer) bool { return true }
			defer func() { isTerminal = defaultIsTerminal }()
			code, withBar, stderr := runCLI(t, c.args...)
			if code != 0 || stderr == "" {
				t.Fatalf("a terminal: exit %d, stderr %q, want a progress bar", code, stderr)
			}
			if c.name == "backup" { // each backup has its own file name
				plain, withBar = filepath.Dir(plain), filepath.Dir(withBar)
			}
			if plain != withBar {
				t.Fatalf("stdout differs with a progress bar:\n%s\n---\n%s", plain, withBar)
			}
		})
	}
	if entries, _ := os.ReadDir(backups); len(entries) != 2 || strings.HasSuffix(entries[0].Name(), ".tmp") {
		t.Fatalf("backups %v", entries)
	}
}

var defaultIsTerminal = isTerminal
