package okta

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	sdk "github.com/okta/okta-sdk-golang/v2/okta"

	"keycard/access"
	"keycard/connectors"
)

// Defaults.
const (
	DefaultManagerAttribute = "managerId"
	DefaultTimeout          = connectors.DefaultTimeout
	DefaultGroupCacheTTL    = connectors.DefaultGroupCacheTTL
	// pageLimit is the page size for list calls: Okta's documented default
	// for /users is 200 and it advises ≤200 for /groups.
	pageLimit = 200
	// maxPages stops a paging loop that never ends (a server repeating its
	// next link); 10000 pages of 200 is two million members.
	maxPages = 10000
)

// Config configures a Connector.
type Config struct {
	OrgURL string // https://acme.okta.com; http only on a loopback address
	Token  string // SSWS API token
	// ManagerAttribute is the profile attribute holding the manager's id,
	// login or email. Default managerId.
	ManagerAttribute string
	// Timeout bounds every HTTP call (one page). Default 10s.
	Timeout time.Duration
	// HTTPClient is used for transport settings (proxies, TLS). Optional.
	HTTPClient *http.Client
	// Clock drives the group-id cache and the default RetryAt. Default
	// access.SystemClock.
	Clock access.Clock
	// GroupCacheTTL, default DefaultGroupCacheTTL.
	GroupCacheTTL time.Duration
}

// settings are what String, GoString (%#v) and LogValue (slog) show: the
// config without the token.
func (c Config) settings() connectors.Settings {
	return connectors.Settings{Type: "okta.Config", List: []connectors.Setting{
		connectors.Text("OrgURL", "org_url", c.OrgURL),
		connectors.Secret("Token", "token", c.Token),
		connectors.Text("ManagerAttribute", "manager_attribute", c.ManagerAttribute),
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

// Connector is the Okta directory and provisioner. It is unscoped: main
// wraps it with connectors.Scoped. Safe for concurrent use.
type Connector struct {
	client  *sdk.Client
	orgURL  string
	mgrAttr string
	timeout time.Duration
	clock   access.Clock
	groups  connectors.GroupCache
	hold    *rateLimitRecorder // Okta's X-Rate-Limit-Reset, held across calls
}

var _ access.Directory = (*Connector)(nil)
var _ access.Provisioner = (*Connector)(nil)

// ValidateOrgURL checks the org URL the way SPEC requires: https://, except
// a loopback http:// address for tests and emulators. It returns the URL
// without a trailing slash (the SDK concatenates OrgUrl and path, so a
// trailing slash would produce `//api/v1/...`).
func ValidateOrgURL(raw string) (string, error) {
	return connectors.ValidateBaseURL(raw, "okta org URL", " (set OKTA_CLIENT_ORGURL)", "https://acme.okta.com")
}

// New builds a Connector. Every SDK knob is set explicitly, because
// okta-sdk-golang/v2 otherwise takes values from ~/.okta/okta.yaml and OKTA_*
// variables (notes/okta.md §1): SSWS mode, cache off (its 300 s cache serves
// stale membership, #284), no SDK 429 retries (we report RetryAt instead), a
// request timeout, and an http.Client with a timeout (the SDK's own has none).
func New(cfg Config) (*Connector, error) {
	org, err := ValidateOrgURL(cfg.OrgURL)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(cfg.Token) == "" {
		return nil, access.Errorf(access.CodeInvalid, "okta API token is empty (set OKTA_CLIENT_TOKEN)")
	}
	c := &Connector{
		orgURL:  org,
		mgrAttr: cfg.ManagerAttribute,
		timeout: cfg.Timeout,
		clock:   connectors.ClockOr(cfg.Clock),
		groups:  connectors.GroupCache{TTL: connectors.DurationOr(cfg.GroupCacheTTL, DefaultGroupCacheTTL)},
	}
	if c.mgrAttr == "" {
		c.mgrAttr = DefaultManagerAttribute
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	hc := &http.Client{}
	if cfg.HTTPClient != nil {
		*hc = *cfg.HTTPClient
	}
	hc.Timeout = c.timeout
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	c.hold = &rateLimitRecorder{next: base, clock: c.clock}
	hc.Transport = c.hold
	secs := int64(math.Ceil(c.timeout.Seconds()))
	opts := []sdk.ConfigSetter{
		sdk.WithOrgUrl(org),
		sdk.WithToken(cfg.Token),
		sdk.WithAuthorizationMode("SSWS"),
		sdk.WithCache(false),
		sdk.WithRateLimitMaxRetries(0),
		sdk.WithRateLimitMaxBackOff(secs),
		sdk.WithRequestTimeout(secs),
		sdk.WithConnectionTimeout(secs),
		sdk.WithHttpClientPtr(hc),
		sdk.WithTestingDisableHttpsCheck(strings.HasPrefix(org, "http://")),
	}
	_, client, err := sdk.NewClient(context.Background(), opts...)
	if err != nil {
		return nil, access.Wrap(access.CodeInvalid, err, "okta client for %s", org)
	}
	c.client = client
	return c, nil
}

// call is one bounded HTTP exchange: a deadline so the SDK's unbounded EOF
// retry loop cannot spin forever (notes/okta.md §3), and a note that the
// transport fills in when Okta answers 429.
type call struct {
	ctx    context.Context
	cancel context.CancelFunc
	note   *rateNote
}

func (c *Connector) begin(ctx context.Context) call {
	n := &rateNote{}
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, rateNoteKey{}, n), c.timeout)
	return call{ctx: ctx, cancel: cancel, note: n}
}

type rateNoteKey struct{}

// rateNote records the last 429 of one call. The SDK drops the response of
// an exhausted 429 and returns only errors.New("too many requests")
// (notes/okta.md §3), so the reset time must be caught on the wire.
type rateNote struct {
	mu    sync.Mutex
	hit   bool
	reset time.Time
}

// MaxHold bounds how long one 429's X-Rate-Limit-Reset keeps keycard from
// sending anything to Okta (a bad header must not stall deprovisioning:
// handlers caps removals at the same order, issue 10).
const MaxHold = connectors.MaxHold

// rateLimitRecorder is the RoundTripper that fills rateNote from Okta's
// X-Rate-Limit-Reset (UTC epoch seconds), and holds every later request
// until that time: Okta's header is honoured across calls, so no request
// goes out before it says (SPEC "Identity providers"). A held request never
// reaches Okta; it is answered here with Okta's own 429, so the SDK and
// classify treat it like the real one.
type rateLimitRecorder struct {
	next  http.RoundTripper
	clock access.Clock

	mu        sync.Mutex
	notBefore time.Time
}

func (t *rateLimitRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	t.mu.Lock()
	hold := t.notBefore
	t.mu.Unlock()
	if now := t.clock.Now(); now.Before(hold) {
		resp := heldResponse(r, hold)
		t.note(r, resp)
		return resp, nil
	}
	resp, err := t.next.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusTooManyRequests {
		reset := t.note(r, resp)
		if reset.IsZero() {
			reset = t.clock.Now().Add(time.Minute)
		}
		if lim := t.clock.Now().Add(MaxHold); reset.After(lim) {
			reset = lim
		}
		t.mu.Lock()
		if reset.After(t.notBefore) {
			t.notBefore = reset
		}
		t.mu.Unlock()
	}
	return resp, err
}

// note records a 429 in the call's rateNote and returns its reset time.
func (t *rateLimitRecorder) note(r *http.Request, resp *http.Response) time.Time {
	var reset time.Time
	if secs, perr := strconv.ParseInt(resp.Header.Get("X-Rate-Limit-Reset"), 10, 64); perr == nil {
		reset = time.Unix(secs, 0).UTC()
	}
	if n, ok := r.Context().Value(rateNoteKey{}).(*rateNote); ok {
		n.mu.Lock()
		n.hit, n.reset = true, reset
		n.mu.Unlock()
	}
	return reset
}

// heldResponse is Okta's 429 for a request keycard holds back.
func heldResponse(r *http.Request, until time.Time) *http.Response {
	body := `{"errorCode":"E0000047","errorSummary":"API call exceeded rate limit due to too many requests.","errorLink":"E0000047","errorId":"keycard-hold","errorCauses":[]}`
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	h.Set("X-Rate-Limit-Remaining", "0")
	h.Set("X-Rate-Limit-Reset", strconv.FormatInt(until.Unix(), 10))
	return &http.Response{StatusCode: http.StatusTooManyRequests, Status: "429 Too Many Requests", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: r}
}

// classify turns an SDK outcome into an *access.Error. what names the
// operation for the safe message ("read user x"); the cause carries Okta's
// errorCode and errorId, never the token.
func (c *Connector) classify(cl call, resp *sdk.Response, err error, what string) error {
	if err == nil {
		return nil
	}
	cl.note.mu.Lock()
	hit, reset := cl.note.hit, cl.note.reset
	cl.note.mu.Unlock()
	status := 0
	if resp != nil && resp.Response != nil {
		status = resp.StatusCode
	}
	if hit && (status == 0 || status == http.StatusTooManyRequests) {
		if reset.IsZero() {
			reset = c.clock.Now().Add(time.Minute)
		}
		e := access.Wrap(access.CodeRateLimited, fmt.Errorf("okta: 429 E0000047 until %s: %w", reset.Format(time.RFC3339), err),
			"Okta is rate limiting keycard (%s); retry after %s", what, reset.Format(time.RFC3339))
		e.RetryAt = reset
		return e
	}
	var oe *sdk.Error
	if errors.As(err, &oe) && oe.ErrorCode == "" && status >= 400 && status != http.StatusTooManyRequests {
		// The SDK makes an *sdk.Error of any error body, but only Okta's
		// JSON carries an errorCode: a proxy's or gateway's HTML page says
		// nothing about the user or group, so it is never "not found" or
		// "refused" (a 404 taken at its word would offboard a live user or
		// mark a removal done). Retry it like an outage.
		return access.Wrap(access.CodeUnavailable, fmt.Errorf("okta: status %d without Okta's error body: %w", status, err),
			"Okta's answer was not Okta's (status %d, no Okta error code: a proxy or gateway?) (%s)", status, what)
	}
	if errors.As(err, &oe) {
		cause := fmt.Errorf("okta: status %d %s (errorId %s): %s: %w", status, oe.ErrorCode, oe.ErrorId, oe.ErrorSummary, err)
		switch {
		case status == http.StatusNotFound || oe.ErrorCode == "E0000007":
			return access.Wrap(access.CodeNotFound, cause, "Okta: not found (%s)", what)
		case status == http.StatusUnauthorized:
			return access.Wrap(access.CodeForbidden, cause, "Okta rejected keycard's API token (%s)", what)
		case status == http.StatusForbidden:
			return access.Wrap(access.CodeForbidden, cause, "Okta refused the change (%s): the token lacks rights, or the group is not an OKTA_GROUP", what)
		case status == http.StatusTooManyRequests:
			e := access.Wrap(access.CodeRateLimited, cause, "Okta is rate limiting keycard (%s)", what)
			e.RetryAt = c.clock.Now().Add(time.Minute)
			return e
		case status >= 500:
			return access.Wrap(access.CodeUnavailable, cause, "Okta is unavailable (%s)", what)
		case status >= 400:
			return access.Wrap(access.CodeInvalid, cause, "Okta refused the request (%s)", what)
		}
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || cl.ctx.Err() != nil ||
		errors.As(err, &ne) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) {
		return access.Wrap(access.CodeUnavailable, fmt.Errorf("okta: %w", err), "Okta did not answer in time (%s)", what)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return access.Wrap(access.CodeUnavailable, fmt.Errorf("okta: %w", err), "Okta could not be reached (%s)", what)
	}
	return access.Wrap(access.CodeUnavailable, fmt.Errorf("okta: %w", err), "Okta call failed (%s)", what)
}
