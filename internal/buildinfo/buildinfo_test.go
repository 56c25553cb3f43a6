package buildinfo

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	vcs := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "keycard", Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "3f2a9c1d0b7e5a6f8e9d0c1b2a3f4e5d6c7b8a90"},
		{Key: "vcs.time", Value: "2026-03-02T09:30:00Z"},
		{Key: "vcs.modified", Value: "true"},
	}}
	cases := []struct {
		name              string
		bi                *debug.BuildInfo
		ldV, ldC, ldD     string
		want              Info
		wantShort, wantIn string
	}{
		{name: "no build info", bi: nil,
			want:      Info{Version: "dev", Commit: "unknown", Date: "unknown"},
			wantShort: "dev", wantIn: "keycard dev commit unknown built unknown"},
		{name: "git checkout with changes", bi: vcs,
			want:      Info{Version: "dev", Commit: "3f2a9c1d0b7e5a6f8e9d0c1b2a3f4e5d6c7b8a90", Date: "2026-03-02T09:30:00Z", Modified: true, GoVersion: "go1.26.8"},
			wantShort: "dev+3f2a9c1d0b7e+dirty", wantIn: "keycard dev commit 3f2a9c1d0b7e5a6f8e9d0c1b2a3f4e5d6c7b8a90 (modified) built 2026-03-02T09:30:00Z go1.26.8"},
		{name: "go install of a tag", bi: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.4.0"}},
			want:      Info{Version: "v1.4.0", Commit: "unknown", Date: "unknown", GoVersion: "go1.26.8"},
			wantShort: "v1.4.0", wantIn: "keycard v1.4.0 commit unknown built unknown go1.26.8"},
		{name: "ldflags win", bi: vcs, ldV: "v1.5.0", ldC: "abcdef0123456789", ldD: "2026-04-01T00:00:00Z",
			want:      Info{Version: "v1.5.0", Commit: "abcdef0123456789", Date: "2026-04-01T00:00:00Z", GoVersion: "go1.26.8"},
			wantShort: "v1.5.0", wantIn: "keycard v1.5.0 commit abcdef0123456789 built 2026-04-01T00:00:00Z go1.26.8"},
		{name: "ldflags dirty commit", bi: nil, ldC: "abcdef0123456789abcd-dirty",
			want:      Info{Version: "dev", Commit: "abcdef0123456789abcd-dirty", Date: "unknown", Modified: true},
			wantShort: "dev+abcdef012345+dirty", wantIn: "keycard dev commit abcdef0123456789abcd-dirty built unknown"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := resolve(c.bi, c.ldV, c.ldC, c.ldD)
			if c.want.GoVersion == "" {
				c.want.GoVersion = got.GoVersion // runtime.Version(): the test's toolchain
			}
			if got != c.want {
				t.Fatalf("got %+v\nwant %+v", got, c.want)
			}
			if s := got.Short(); s != c.wantShort {
				t.Errorf("Short() = %q, want %q", s, c.wantShort)
			}
			if s := got.String(); !strings.HasPrefix(s, c.wantIn) {
				t.Errorf("String() = %q, want prefix %q", s, c.wantIn)
			}
		})
	}
}

// TestLdflags builds a tiny program with -ldflags -X and checks the linker's
// values come through Get: the recipe in the package doc (and the
// Dockerfile) works.
func TestLdflags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	dir := t.TempDir()
	main := "package main\n\nimport (\n\t\"fmt\"\n\n\t\"keycard/internal/buildinfo\"\n)\n\nfunc main() { fmt.Print(buildinfo.Get().String()) }\n"
	if err := os.MkdirAll(filepath.Join("testdata", "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The program must live inside the module to import an internal package.
	src, err := os.MkdirTemp(filepath.Join("testdata", "tmp"), "ld")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Join("testdata", "tmp")) })
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "kv")
	ld := "-X keycard/internal/buildinfo.version=v9.9.9 -X keycard/internal/buildinfo.commit=0123abcd -X keycard/internal/buildinfo.date=2026-01-02T03:04:05Z"
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", ld, "-o", bin, "./"+filepath.ToSlash(src))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := "keycard v9.9.9 commit 0123abcd built 2026-01-02T03:04:05Z go"; !strings.HasPrefix(string(out), want) {
		t.Fatalf("got %q, want prefix %q", out, want)
	}
}
