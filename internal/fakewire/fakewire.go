// Package fakewire holds what the identity-provider emulators (oktafake,
// graphfake, jumpcloudfake) share about injecting faults: a request pattern
// ("METHOD /path/prefix" or a path.Match glob) and whether a request
// matches it.
package fakewire

import (
	"path"
	"strings"
)

// Split parses a fault pattern: an optional method, a space, then a path
// prefix or glob ("PUT /api/v1/groups/", "/v1.0/users/*").
func Split(p string) (method, pattern string) {
	if i := strings.IndexByte(p, ' '); i > 0 {
		return strings.ToUpper(p[:i]), strings.TrimSpace(p[i+1:])
	}
	return "", p
}

// Match reports whether a request matches a split pattern: the method when
// one is given, and the path by glob (when the pattern has one) or prefix.
func Match(method, pattern, reqMethod, reqPath string) bool {
	if method != "" && method != reqMethod {
		return false
	}
	if strings.ContainsAny(pattern, "*?[") {
		ok, err := path.Match(pattern, reqPath)
		return err == nil && ok
	}
	return strings.HasPrefix(reqPath, pattern)
}
