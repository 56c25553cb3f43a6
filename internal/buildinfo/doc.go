// Package buildinfo says which code a keycard binary was built from, for
// `keycard version`, the start log line and every evidence manifest
// (keycard_version): an auditor must be able to tie a manifest to a commit.
//
// The values come from the Go toolchain's build information
// (runtime/debug.ReadBuildInfo: the module version and, when built inside a
// git checkout, vcs.revision, vcs.time and vcs.modified). A release build
// may override them with the linker, which wins over the toolchain's:
//
//	go build -trimpath -ldflags "-X keycard/internal/buildinfo.version=v1.4.0 \
//	  -X keycard/internal/buildinfo.commit=$(git rev-parse HEAD) \
//	  -X keycard/internal/buildinfo.date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
//
// (a Docker build has no .git directory, so the Dockerfile passes them).
package buildinfo
