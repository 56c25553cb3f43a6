package jumpcloud

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"keycard/access"
	"keycard/connectors"
)

// Defaults.
const (
	// DefaultAPIURL is JumpCloud's API base in the US region; EUAPIURL is
	// the EU region's.
	DefaultAPIURL = "https://console.jumpcloud.com"
	EUAPIURL      = "https://console.eu.jumpcloud.com"

	DefaultTimeout    = connectors.DefaultTimeout
	DefaultMaxRetries = 3
	DefaultMaxWait    = 10 * time.Second
	DefaultBackoff    = 500 * time.Millisecond
	// DefaultMaxHold bounds how long one 429's Retry-After keeps every call
	// from being sent (see Config.MaxHold).
	DefaultMaxHold       = connectors.MaxHold
	DefaultGroupCacheTTL = connectors.DefaultGroupCacheTTL

	// pageLimit is JumpCloud's largest page (limit ≤ 100 on v1 and v2).
	pageLimit = 100
	// maxPages stops a listing that never ends: 5000 pages of 100.
	maxPages = 5000
	// maxBody bounds one answer; a page of 100 full system users is far less.
	maxBody = 16 << 20
	// defaultRetryAfter is assumed when a 429 carries no usable Retry-After.
	defaultRetryAfter = time.Minute
)

// Config configures a Connector.
type Config struct {
	// APIURL is the API base: DefaultAPIURL, EUAPIURL, or http:// on a
	// loopback address for tests. Empty means DefaultAPIURL.
	APIURL string
	// APIKey is an administrator API key (x-api-key). Required.
	APIKey string
	// OrgID is sent as x-org-id when set (multi-tenant administrators).
	OrgID string
	// Timeout bounds every HTTP exchange (one page, one attempt). Default 10s.
	Timeout time.Duration
	// MaxRetries is how many times a 5xx, a transport error, a malformed
	// answer or a short 429 is retried within a call. Default 3; negative
	// means none.
	MaxRetries int
	// MaxWait is the longest Retry-After the connector waits out within a
	// call; a longer one is returned as CodeRateLimited. Default 10s;
	// negative means never wait.
	MaxWait time.Duration
	// Backoff is the first pause after a 5xx; it doubles on each retry.
	// Default 500ms.
	Backoff time.Duration
	// MaxHold bounds the connector's own hold after a 429: for at most this
	// long after the answer, calls are refused without being sent. A
	// Retry-After far in the future (a bad header, a hostile proxy) must not
	// stop every call, removals included, past the caller's own retry cap.
	// Default DefaultMaxHold.
	MaxHold time.Duration
	// HTTPClient supplies the transport (proxies, TLS). Optional; the
	// default honours HTTPS_PROXY/NO_PROXY and the system trust store.
	HTTPClient *http.Client
	// Clock reads now for Retry-After and the group cache. Default
	// access.SystemClock.
	Clock access.Clock
	// Sleep waits d or until ctx ends. Default: a timer. Tests pass one
	// that moves their fake clock.
	Sleep func(ctx context.Context, d time.Duration) error
	// GroupCacheTTL, default DefaultGroupCacheTTL.
	GroupCacheTTL time.Duration
}

// settings are what String, GoString (%#v) and LogValue (slog) show: the
// config without the API key.
func (c Config) settings() connectors.Settings {
	return connectors.Settings{Type: "jumpcloud.Config", List: []connectors.Setting{
		connectors.Text("APIURL", "api_url", c.APIURL),
		connectors.Secret("APIKey", "api_key", c.APIKey),
		connectors.Text("OrgID", "org_id", c.OrgID),
		connectors.Duration("Timeout", "timeout", c.Timeout),
	}}
}

// String, GoString and LogValue print the settings above, never a secret.
func (c Config) String() string   { return c.settings().String() }
func (c Config) GoString() string { return c.String() }

// Format is String whatever the verb: %d or %x must not print the secret
// either.
func (c Config) Format(f fmt.State, verb rune) { c.settings().Format(f, verb) }
func (c Config) LogValue() slog.Value          { return c.settings().LogValue() }

// ConfigFromEnv reads JUMPCLOUD_API_KEY, JUMPCLOUD_ORG_ID and
// JUMPCLOUD_API_URL (SPEC "Configuration"). A missing or malformed
// variable is an error of one line naming it; the key never appears.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	cfg := Config{
		APIKey: strings.TrimSpace(getenv("JUMPCLOUD_API_KEY")),
		OrgID:  strings.TrimSpace(getenv("JUMPCLOUD_ORG_ID")),
		APIURL: strings.TrimSpace(getenv("JUMPCLOUD_API_URL")),
	}
	if cfg.APIKey == "" {
		return Config{}, access.Errorf(access.CodeInvalid, "JUMPCLOUD_API_KEY is not set (a JumpCloud administrator API key)")
	}
	if strings.ContainsFunc(cfg.APIKey, isControlOrSpace) {
		return Config{}, access.Errorf(access.CodeInvalid, "JUMPCLOUD_API_KEY is malformed (it contains spaces or control characters)")
	}
	if strings.ContainsFunc(cfg.OrgID, isControlOrSpace) {
		return Config{}, access.Errorf(access.CodeInvalid, "JUMPCLOUD_ORG_ID %q is malformed", cfg.OrgID)
	}
	if cfg.APIURL == "" {
		cfg.APIURL = DefaultAPIURL
	}
	u, err := ValidateAPIURL(cfg.APIURL)
	if err != nil {
		return Config{}, access.Wrap(access.CodeInvalid, err, "JUMPCLOUD_API_URL: %s", access.MessageOf(err))
	}
	cfg.APIURL = u
	return cfg, nil
}

func isControlOrSpace(r rune) bool { return r <= ' ' || r == 0x7f }

// ValidateAPIURL checks the API base the way SPEC requires: https://,
// except a loopback http:// address for tests and emulators; scheme and
// host only. It returns the URL without a trailing slash.
func ValidateAPIURL(raw string) (string, error) {
	return connectors.ValidateBaseURL(raw, "JumpCloud API URL", "", DefaultAPIURL)
}

// Connector is the JumpCloud directory and provisioner. It is unscoped: the
// wiring wraps it with connectors.Scoped. Safe for concurrent use.
type Connector struct {
	base     string
	key, org string
	timeout  time.Duration
	retries  int
	maxWait  time.Duration
	maxHold  time.Duration
	backoff  time.Duration
	hc       *http.Client
	clock    access.Clock
	sleep    connectors.SleepFunc

	hold   connectors.Hold // no request goes out before the last Retry-After
	groups connectors.GroupCache
}

var _ access.Directory = (*Connector)(nil)
var _ access.Provisioner = (*Connector)(nil)

// New builds a Connector; it makes no request (Check does).
func New(cfg Config) (*Connector, error) {
	if cfg.APIURL == "" {
		cfg.APIURL = DefaultAPIURL
	}
	base, err := ValidateAPIURL(cfg.APIURL)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(cfg.APIKey) == "" {
		return nil, access.Errorf(access.CodeInvalid, "JumpCloud API key is empty (set JUMPCLOUD_API_KEY)")
	}
	c := &Connector{
		base:    base,
		key:     strings.TrimSpace(cfg.APIKey),
		org:     strings.TrimSpace(cfg.OrgID),
		timeout: connectors.DurationOr(cfg.Timeout, DefaultTimeout),
		retries: cfg.MaxRetries,
		maxWait: cfg.MaxWait,
		maxHold: connectors.DurationOr(cfg.MaxHold, DefaultMaxHold),
		backoff: connectors.DurationOr(cfg.Backoff, DefaultBackoff),
		clock:   connectors.ClockOr(cfg.Clock),
		sleep:   connectors.SleepOr(cfg.Sleep),
		groups:  connectors.GroupCache{TTL: connectors.DurationOr(cfg.GroupCacheTTL, DefaultGroupCacheTTL)},
	}
	switch {
	case c.retries == 0:
		c.retries = DefaultMaxRetries
	case c.retries < 0:
		c.retries = 0
	}
	switch {
	case c.maxWait == 0:
		c.maxWait = DefaultMaxWait
	case c.maxWait < 0:
		c.maxWait = 0
	}
	c.hc = connectors.HTTPClient(cfg.HTTPClient)
	return c, nil
}

// Check proves the key works with one cheap read, so a wrong key stops
// start-up with one clear sentence instead of failing on the first request.
func (c *Connector) Check(ctx context.Context) error {
	var page userPage
	_, err := c.do(ctx, "check the API key", http.MethodGet, "/api/systemusers",
		url.Values{"limit": {"1"}, "fields": {"email"}}, nil, &page)
	if access.CodeOf(err) == access.CodeForbidden {
		var e *access.Error
		if errors.As(err, &e) {
			return access.Wrap(access.CodeForbidden, e.Err,
				"the IdP refused keycard's credentials: JumpCloud did not accept JUMPCLOUD_API_KEY%s", orgHint(c.org))
		}
	}
	return err
}

func orgHint(org string) string {
	if org == "" {
		return ""
	}
	return " for JUMPCLOUD_ORG_ID " + org
}

// reply is a non-retried answer: its status and, for errors, JumpCloud's
// message.
type reply struct {
	status int
	msg    string
}

// apiError is JumpCloud's error body: v1 {"message"}, v2 {"code",
// "message", "status"}; some gateways answer {"error"}.
type apiError struct {
	Message string `json:"message"`
	Status  string `json:"status"`
	Error   string `json:"error"`
}

func errorMessage(body []byte) string {
	var e apiError
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	msg := e.Message
	if msg == "" {
		msg = e.Error
	}
	if e.Status != "" {
		msg = strings.TrimSpace(e.Status + " " + msg)
	}
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return msg
}

// isAPIError reports whether a non-2xx answer is JumpCloud's own error
// body: JSON (by Content-Type) that decodes as apiError with something in
// it. Anything else (an HTML page, an empty body) is not JumpCloud's word.
func isAPIError(hdr http.Header, raw []byte) bool {
	mt, _, err := mime.ParseMediaType(hdr.Get("Content-Type"))
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return false
	}
	var e apiError
	if json.Unmarshal(raw, &e) != nil {
		return false
	}
	return e.Message != "" || e.Status != "" || e.Error != ""
}

// do sends one API call with its retries. out (when non-nil) receives a
// 200's JSON body; a 2xx that is not the JSON out expects counts as a
// malformed answer. 429, 5xx, transport failures and malformed answers
// are retried (see the package doc); 401 and 403 on a read become
// CodeForbidden at once. Any other status is returned in reply for the
// caller to judge.
func (c *Connector) do(ctx context.Context, what, method, path string, q url.Values, body, out any) (reply, error) {
	var payload []byte
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return reply{}, access.Wrap(access.CodeInternal, err, "JumpCloud request body (%s)", what)
		}
		payload = b
	}
	target := c.base + path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	var last error
	for attempt := 0; ; attempt++ {
		if err := c.waitTurn(ctx, what); err != nil {
			return reply{}, err
		}
		status, hdr, raw, err := c.once(ctx, method, target, payload)
		var retryIn time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return reply{}, access.Wrap(access.CodeUnavailable, fmt.Errorf("jumpcloud: %w", err), "JumpCloud did not answer before keycard gave up (%s)", what)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				// The attempt used its whole deadline: another would too, so
				// the call ends here and the caller's retry queue takes over
				// (a stalled JumpCloud must not hold a call for retries×timeout).
				return reply{}, access.Wrap(access.CodeUnavailable, fmt.Errorf("jumpcloud: %w", err), "JumpCloud did not answer within %s (%s)", c.timeout, what)
			}
			last = access.Wrap(access.CodeUnavailable, fmt.Errorf("jumpcloud: %w", err), "JumpCloud could not be reached (%s)", what)
			retryIn = c.backoff << attempt
		case status == http.StatusTooManyRequests:
			wait := retryAfter(hdr, c.clock.Now())
			until := c.clock.Now().Add(wait)
			c.hold.Until(until, c.clock.Now(), c.maxHold)
			e := access.Wrap(access.CodeRateLimited, fmt.Errorf("jumpcloud: 429 %s, Retry-After %s", errorMessage(raw), wait),
				"JumpCloud is rate limiting keycard (%s); retry after %s", what, until.UTC().Format(time.RFC3339))
			e.RetryAt = until
			if attempt >= c.retries || wait > c.maxWait {
				return reply{}, e
			}
			last = e
			// waitTurn at the top of the loop waits out the hold.
		case status == http.StatusUnauthorized || (status == http.StatusForbidden && method == http.MethodGet):
			return reply{}, access.Wrap(access.CodeForbidden, fmt.Errorf("jumpcloud: %d %s", status, errorMessage(raw)),
				"the IdP refused keycard's credentials (JumpCloud answered %d to %s)", status, what)
		case status >= 500:
			last = access.Wrap(access.CodeUnavailable, fmt.Errorf("jumpcloud: %d %s", status, errorMessage(raw)),
				"JumpCloud is unavailable (%s)", what)
			retryIn = c.backoff << attempt
			if ra := retryAfter(hdr, c.clock.Now()); hdr.Get("Retry-After") != "" && ra > retryIn {
				retryIn = ra
			}
		case status >= 200 && status < 300:
			if out == nil || status == http.StatusNoContent {
				return reply{status: status}, nil
			}
			if err := decodeJSON(hdr, raw, out); err != nil {
				last = access.Wrap(access.CodeUnavailable, fmt.Errorf("jumpcloud: %d: %w", status, err),
					"JumpCloud answered with something that is not the API's JSON (%s)", what)
				retryIn = c.backoff << attempt
				break
			}
			return reply{status: status}, nil
		case status >= 300 && status < 400:
			return reply{}, access.Errorf(access.CodeUnavailable, "JumpCloud answered %d, a redirect keycard does not follow (%s); check JUMPCLOUD_API_URL", status, what)
		default:
			if !isAPIError(hdr, raw) {
				// A 4xx that is not JumpCloud's error JSON came from
				// something in between (a proxy, a gateway): it says
				// nothing about the user or group, so a 404 or 409 here
				// must never pass for "not a member", "already a member"
				// or "deleted". Retried like an outage.
				last = access.Errorf(access.CodeUnavailable, "JumpCloud answered %s with a %d %q page, not JumpCloud's error JSON", what, status, hdr.Get("Content-Type"))
				retryIn = c.backoff << attempt
				break
			}
			return reply{status: status, msg: errorMessage(raw)}, nil
		}
		if attempt >= c.retries {
			return reply{}, last
		}
		if retryIn > 0 {
			if err := c.sleep(ctx, retryIn); err != nil {
				return reply{}, last
			}
		}
	}
}

// once is one HTTP exchange under the per-call deadline.
func (c *Connector) once(ctx context.Context, method, target string, payload []byte) (int, http.Header, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("x-api-key", c.key)
	if c.org != "" {
		req.Header.Set("x-org-id", c.org)
	}
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "keycard-jumpcloud")
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return 0, nil, nil, err
	}
	if len(raw) > maxBody {
		return 0, nil, nil, fmt.Errorf("answer larger than %d bytes", maxBody)
	}
	return resp.StatusCode, resp.Header, raw, nil
}

func decodeJSON(hdr http.Header, raw []byte, out any) error {
	if ct := hdr.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return fmt.Errorf("content type %q, not JSON", ct)
		}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return nil
}

// retryAfter reads Retry-After as seconds or an HTTP date, relative to now.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return defaultRetryAfter
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return defaultRetryAfter
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
		return 0
	}
	return defaultRetryAfter
}

// waitTurn keeps the last Retry-After: it waits it out when it is short
// enough (and ctx's deadline allows), else it refuses the call without
// sending anything (connectors.Hold.Wait).
func (c *Connector) waitTurn(ctx context.Context, what string) error {
	nb, held, cause := c.hold.Wait(ctx, c.clock.Now(), c.maxWait, c.sleep)
	if !held || cause == nil {
		return nil
	}
	e := access.Wrap(access.CodeRateLimited, cause, "JumpCloud is rate limiting keycard (%s); retry after %s", what, nb.UTC().Format(time.RFC3339))
	e.RetryAt = nb
	return e
}
