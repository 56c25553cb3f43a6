package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// Set by -ldflags -X; empty in an ordinary build.
var (
	version string
	commit  string
	date    string
)

// Info describes one build.
type Info struct {
	Version   string // a tag like v1.4.0, a pseudo-version, or "dev"
	Commit    string // full git revision; "unknown" when not known
	Date      string // commit or build time, RFC 3339 UTC; "unknown" when not known
	Modified  bool   // built from a checkout with uncommitted changes
	GoVersion string
}

// Get returns this binary's build information.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return resolve(bi, version, commit, date)
}

// resolve merges the linker's values (which win) over the toolchain's.
func resolve(bi *debug.BuildInfo, ldVersion, ldCommit, ldDate string) Info {
	in := Info{Version: "dev", Commit: "unknown", Date: "unknown", GoVersion: runtime.Version()}
	if bi != nil {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			in.Version = v
		}
		if bi.GoVersion != "" {
			in.GoVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				in.Commit = s.Value
			case "vcs.time":
				in.Date = s.Value
			case "vcs.modified":
				in.Modified = s.Value == "true"
			}
		}
	}
	if ldVersion != "" {
		in.Version = ldVersion
	}
	if ldCommit != "" {
		in.Commit = ldCommit
		in.Modified = strings.HasSuffix(ldCommit, "-dirty")
	}
	if ldDate != "" {
		in.Date = ldDate
	}
	return in
}

// Short is the version as it goes into a manifest and the start log line:
// the version, and for a build that is not a tagged release the short commit
// (with "+dirty" for uncommitted changes), e.g. "dev+3f2a9c1d0b7e+dirty".
func (in Info) Short() string {
	s := in.Version
	if in.Commit != "unknown" && (s == "dev" || strings.Contains(s, "devel")) {
		s += "+" + shortCommit(in.Commit)
	}
	if in.Modified && !strings.HasSuffix(s, "dirty") {
		s += "+dirty"
	}
	return s
}

// String is `keycard version`'s output, one line.
func (in Info) String() string {
	s := "keycard " + in.Version + " commit " + in.Commit
	if in.Modified && !strings.HasSuffix(in.Commit, "-dirty") {
		s += " (modified)"
	}
	return s + " built " + in.Date + " " + in.GoVersion
}

func shortCommit(c string) string {
	c = strings.TrimSuffix(c, "-dirty")
	if len(c) > 12 {
		return c[:12]
	}
	return c
}
