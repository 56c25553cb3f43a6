package connectors

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"keycard/access"
)

// What the network connectors (okta, entra, jumpcloud) share: redacting a
// secret and describing a config without it, the loopback test for plain
// http and the base URL rule, the shared defaults and filling them, a timer
// sleep, the HTTP client copy, the group name → id cache and the
// Retry-After hold kept across calls.

// Defaults the network connectors share: the same bounds hold whatever the
// provider, so they are set once here (each connector package re-exports
// them under its own name).
const (
	// DefaultTimeout bounds one HTTP exchange (one page, one attempt).
	DefaultTimeout = 10 * time.Second
	// DefaultGroupCacheTTL bounds how long a group name → id mapping is
	// trusted: ids never change; the TTL catches a group deleted and
	// re-created under the same name.
	DefaultGroupCacheTTL = 5 * time.Minute
	// MaxHold bounds how long one Retry-After (or Okta's
	// X-Rate-Limit-Reset) keeps keycard from sending anything to the
	// provider: a bad header must not stall deprovisioning, and handlers
	// caps removals at the same order (issue 10).
	MaxHold = 15 * time.Minute
)

// Redact is how a connector's Config prints a secret in String, GoString
// and LogValue: "(none)" when it is empty, "[redacted]" otherwise.
func Redact(secret string) string {
	if secret == "" {
		return "(none)"
	}
	return "[redacted]"
}

// A Setting is one field of a connector's Config as its String and
// LogValue show it: under its Go name in String, under its slog key in
// LogValue. Build one with Text, Word, Secret or Duration.
type Setting struct {
	name, key string
	value     slog.Value
	quote     bool // String quotes it (%q)
}

// Text is a plain string setting; String quotes it.
func Text(name, key, v string) Setting {
	return Setting{name: name, key: key, value: slog.StringValue(v), quote: true}
}

// Word is a setting String shows unquoted, such as a credential method.
func Word(name, key, v string) Setting {
	return Setting{name: name, key: key, value: slog.StringValue(v)}
}

// Secret is a setting shown only as Redact's word.
func Secret(name, key, secret string) Setting { return Word(name, key, Redact(secret)) }

// Duration is a duration setting.
func Duration(name, key string, d time.Duration) Setting {
	return Setting{name: name, key: key, value: slog.DurationValue(d)}
}

// Settings is how a connector's Config describes itself without its
// secrets: its String, GoString and LogValue all come from one list, so a
// field cannot be redacted in one and printed in another.
type Settings struct {
	Type string // the Go type, "okta.Config"
	List []Setting
}

// String is Type{Name: value, ...}, the form %v would print.
func (s Settings) String() string {
	var b strings.Builder
	b.WriteString(s.Type + "{")
	for i, st := range s.List {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(st.name + ": ")
		if st.quote {
			b.WriteString(strconv.Quote(st.value.String()))
		} else {
			b.WriteString(st.value.String())
		}
	}
	b.WriteString("}")
	return b.String()
}

// Format prints String for every verb (%q quoted), so no verb — %d and %x
// walk a struct's fields without calling String — can print a secret.
func (s Settings) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		_, _ = io.WriteString(f, strconv.Quote(s.String()))
		return
	}
	_, _ = io.WriteString(f, s.String())
}

// LogValue is a slog group of the settings under their keys.
func (s Settings) LogValue() slog.Value {
	attrs := make([]slog.Attr, len(s.List))
	for i, st := range s.List {
		attrs[i] = slog.Attr{Key: st.key, Value: st.value}
	}
	return slog.GroupValue(attrs...)
}

// IsLoopback reports whether host is localhost or a loopback IP, the only
// hosts a connector may reach over plain http (tests and emulators).
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// SleepFunc waits d or until ctx ends.
type SleepFunc = func(ctx context.Context, d time.Duration) error

// TimerSleep is the default SleepFunc: a real timer, stopped early when ctx
// ends (returning ctx.Err()).
func TimerSleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// DurationOr returns d, or def when d is zero or negative.
func DurationOr(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// ClockOr returns c, or access.SystemClock when c is nil.
func ClockOr(c access.Clock) access.Clock {
	if c == nil {
		return access.SystemClock{}
	}
	return c
}

// SleepOr returns s, or TimerSleep when s is nil.
func SleepOr(s SleepFunc) SleepFunc {
	if s == nil {
		return TimerSleep
	}
	return s
}

// HTTPClient returns a copy of base (nil means a zero client) with a
// transport of its own when base has none (a clone of
// http.DefaultTransport, which honours HTTPS_PROXY/NO_PROXY and the system
// trust store) and redirects not followed: a redirect would carry the
// connector's credential to another address.
func HTTPClient(base *http.Client) *http.Client {
	hc := &http.Client{}
	if base != nil {
		*hc = *base
	}
	if hc.Transport == nil {
		hc.Transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return hc
}

// GroupCache maps group names to ids for a TTL (ids are stable; the TTL
// catches a group deleted and re-created under the same name). An entry
// stamped after now (a clock stepped back) is not trusted. The zero value
// caches nothing until TTL is set; safe for concurrent use.
type GroupCache struct {
	TTL time.Duration

	mu sync.Mutex
	m  map[string]cachedGroup
}

type cachedGroup struct {
	id string
	at time.Time
}

// Get returns the id cached for name if it was stored less than TTL
// before now.
func (g *GroupCache) Get(name string, now time.Time) (string, bool) {
	g.mu.Lock()
	e, ok := g.m[name]
	g.mu.Unlock()
	if ok && now.Sub(e.at) < g.TTL && !now.Before(e.at) {
		return e.id, true
	}
	return "", false
}

// Put caches id for name, stamped now.
func (g *GroupCache) Put(name, id string, now time.Time) {
	g.mu.Lock()
	if g.m == nil {
		g.m = map[string]cachedGroup{}
	}
	g.m[name] = cachedGroup{id: id, at: now}
	g.mu.Unlock()
}

// Forget drops name from the cache.
func (g *GroupCache) Forget(name string) {
	g.mu.Lock()
	delete(g.m, name)
	g.mu.Unlock()
}

// ForgetOn drops name when err says the group no longer exists
// (access.CodeNotFound).
func (g *GroupCache) ForgetOn(name string, err error) {
	if access.CodeOf(err) == access.CodeNotFound {
		g.Forget(name)
	}
}

// ValidateBaseURL checks an identity provider's base URL the way SPEC
// requires: https://, except http:// on a loopback address for tests and
// emulators; scheme and host only. It returns the URL without a trailing
// slash. name starts every message ("okta org URL"), emptyHint ends the
// one for an empty value (" (set OKTA_CLIENT_ORGURL)" or ""), and example
// is the shape a wrong value is told to follow.
func ValidateBaseURL(raw, name, emptyHint, example string) (string, error) {
	s := strings.TrimRight(strings.TrimSpace(raw), "/")
	if s == "" {
		return "", access.Errorf(access.CodeInvalid, "%s is empty%s", name, emptyHint)
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", access.Wrap(access.CodeInvalid, err, "%s %q is not a URL", name, s)
	}
	switch {
	case u.Host == "" || u.Hostname() == "":
		return "", access.Errorf(access.CodeInvalid, "%s %q has no host", name, s)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Path != "":
		return "", access.Errorf(access.CodeInvalid, "%s %q must be scheme and host only, like %s", name, s, example)
	case u.Scheme == "https":
		return s, nil
	case u.Scheme == "http" && IsLoopback(u.Hostname()):
		return s, nil
	case u.Scheme == "http":
		return "", access.Errorf(access.CodeInvalid, "%s %q must use https:// (plain http is allowed only on a loopback address)", name, s)
	}
	return "", access.Errorf(access.CodeInvalid, "%s %q must use https://", name, s)
}

// Hold keeps a provider's last Retry-After across calls: the header applies
// to the app, not to the one request that drew it, so no call is sent
// before it. The zero value holds nothing; safe for concurrent use.
type Hold struct {
	mu        sync.Mutex
	notBefore time.Time
}

// Until holds calls until t, but never longer than maxHold after now: a
// header far in the future (a bad clock, a hostile proxy) must not stop
// every call, removals included, past the caller's own retry cap.
func (h *Hold) Until(t, now time.Time, maxHold time.Duration) {
	if lim := now.Add(maxHold); t.After(lim) {
		t = lim
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if t.After(h.notBefore) {
		h.notBefore = t
	}
}

// Wait waits out a hold pending at now when it is within maxWait and ctx's
// deadline (sleep is the connector's clock). held reports a hold; cause is
// nil when the call may go now, else why it must not be sent: the caller
// refuses it as rate limited, with RetryAt until.
func (h *Hold) Wait(ctx context.Context, now time.Time, maxWait time.Duration, sleep func(context.Context, time.Duration) error) (until time.Time, held bool, cause error) {
	wait, nb := h.Pending(now)
	if wait <= 0 {
		return nb, false, nil
	}
	// The context deadline is wall-clock time by nature.
	if dl, ok := ctx.Deadline(); wait > maxWait || (ok && time.Until(dl) < wait) {
		return nb, true, fmt.Errorf("holding until %s", nb.UTC().Format(time.RFC3339))
	}
	return nb, true, sleep(ctx, wait)
}

// Pending is how long calls are still held at now (0 or less: not held)
// and when the hold ends.
func (h *Hold) Pending(now time.Time) (time.Duration, time.Time) {
	h.mu.Lock()
	nb := h.notBefore
	h.mu.Unlock()
	return nb.Sub(now), nb
}
