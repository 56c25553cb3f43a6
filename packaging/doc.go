// Package packaging holds keycard's deployment files: the hardened systemd
// unit (keycard.service), an example environment file, and the tests that
// keep them and the repository's Dockerfile honest (the hardening directives
// present, `systemd-analyze verify` clean, the image static and non-root).
// It has no Go code of its own.
package packaging
