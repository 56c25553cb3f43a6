package entra

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"keycard/access"
	"keycard/connectors"
)

// maxBody bounds one Graph answer read into memory (a page of 999 users
// with the selected properties is well under 2 MiB).
const maxBody = 16 << 20

// maxPages stops a paging loop (a server repeating or inventing next
// links); 10000 pages of 999 is ten million objects.
const maxPages = 10000

// call is one typed Graph request.
type call struct {
	method string
	url    string // absolute, under the Graph base
	body   any    // JSON body, or nil
	what   string // names the call in errors ("find user by email")
}

// apiError is Graph's error JSON, kept as the cause of an access error so
// an idempotent verb can recognise "already exists".
type apiError struct {
	Status  int
	Code    string `json:"code"`
	Message string `json:"message"`
	Inner   struct {
		RequestID string `json:"request-id"`
		Date      string `json:"date"`
	} `json:"innerError"`
}

func (e *apiError) Error() string {
	return fmt.Sprintf("graph: %d %s: %s (request-id %s)", e.Status, e.Code, e.Message, e.Inner.RequestID)
}

// do sends cl, retrying 429/503/504 after Retry-After and other 5xx or a
// malformed answer after a doubling backoff, at most maxRetries times, and
// decodes a 2xx JSON answer into out (nil: ignore the body). It never
// sends before a Retry-After has passed: a wait longer than maxWait, or
// past ctx's deadline, is returned as CodeRateLimited with RetryAt.
func (c *Connector) do(ctx context.Context, cl call, out any) error {
	if !strings.HasPrefix(cl.url, c.graphHost+"/") {
		return access.Errorf(access.CodeUnavailable, "Graph sent a link outside %s (%s); keycard will not send its token there", c.graphHost, cl.what)
	}
	for attempt := 0; ; attempt++ {
		if err := c.waitTurn(ctx, cl.what); err != nil {
			return err
		}
		wait, err := c.once(ctx, cl, out)
		if err == nil {
			return nil
		}
		if wait < 0 || attempt >= c.maxRetries {
			return err
		}
		if wait == 0 {
			wait = c.backoff << attempt
		}
		until := c.clock.Now().Add(wait)
		// The context deadline is wall-clock time by nature.
		if dl, ok := ctx.Deadline(); wait > c.maxWait || (ok && time.Until(dl) < wait) {
			if access.CodeOf(err) == access.CodeRateLimited {
				return err
			}
			e := access.Wrap(access.CodeUnavailable, err, "Microsoft Graph is unavailable (%s); retry after %s", cl.what, until.Format(time.RFC3339))
			e.RetryAt = until
			return e
		}
		if serr := c.sleep(ctx, wait); serr != nil {
			return access.Wrap(access.CodeUnavailable, err, "Microsoft Graph did not recover before the caller gave up (%s)", cl.what)
		}
	}
}

// once is one exchange under its own deadline. wait < 0: do not retry;
// wait 0: retry after backoff; wait > 0: retry after exactly wait.
func (c *Connector) once(ctx context.Context, cl call, out any) (time.Duration, error) {
	tok, err := c.token(ctx)
	if err != nil {
		if access.CodeOf(err) == access.CodeForbidden {
			return -1, err
		}
		return 0, err
	}
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var body io.Reader
	if cl.body != nil {
		b, err := json.Marshal(cl.body)
		if err != nil {
			return -1, access.Wrap(access.CodeInternal, err, "encode Graph request (%s)", cl.what)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(actx, cl.method, cl.url, body)
	if err != nil {
		return -1, access.Wrap(access.CodeInternal, err, "build Graph request (%s)", cl.what)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "keycard")
	if cl.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if actx.Err() != nil && ctx.Err() == nil {
			// The exchange's own deadline: the caller decides whether to
			// retry (a membership change may have landed).
			return -1, access.Wrap(access.CodeUnavailable, fmt.Errorf("graph: %s %s: %w", cl.method, redactURL(cl.url), context.DeadlineExceeded),
				"Microsoft Graph did not answer within %s (%s)", c.timeout, cl.what)
		}
		if ctx.Err() != nil {
			return -1, access.Wrap(access.CodeUnavailable, ctx.Err(), "Microsoft Graph call abandoned (%s)", cl.what)
		}
		return 0, access.Wrap(access.CodeUnavailable, fmt.Errorf("graph: %s: %w", cl.method, stripURL(err)), "Microsoft Graph could not be reached (%s)", cl.what)
	}
	defer resp.Body.Close()
	raw, rerr := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if rerr != nil {
		if actx.Err() != nil && ctx.Err() == nil {
			return -1, access.Wrap(access.CodeUnavailable, context.DeadlineExceeded, "Microsoft Graph did not answer within %s (%s)", c.timeout, cl.what)
		}
		return 0, access.Wrap(access.CodeUnavailable, rerr, "Microsoft Graph answer cut off (%s)", cl.what)
	}
	st := resp.StatusCode
	if st >= 200 && st < 300 {
		if st == http.StatusNoContent || (out == nil && (len(raw) == 0 || isJSON(resp.Header.Get("Content-Type")))) {
			return 0, nil
		}
		if !isJSON(resp.Header.Get("Content-Type")) {
			return 0, access.Errorf(access.CodeUnavailable, "Microsoft Graph answered %s with %q, not JSON (status %d)", cl.what, contentType(resp), st)
		}
		if err := json.Unmarshal(raw, out); err != nil {
			return 0, access.Wrap(access.CodeUnavailable, fmt.Errorf("graph: %w", err), "Microsoft Graph answered %s with malformed JSON", cl.what)
		}
		return 0, nil
	}
	ae := &apiError{Status: st}
	graphSaid := false
	if isJSON(resp.Header.Get("Content-Type")) {
		var env struct {
			Error *apiError `json:"error"`
		}
		if json.Unmarshal(raw, &env) == nil && env.Error != nil && env.Error.Code != "" {
			ae, graphSaid = env.Error, true
			ae.Status = st
		}
	}
	if !graphSaid {
		ae.Code = "(" + contentType(resp) + " body)"
	}
	switch {
	case !graphSaid && st < 500 && st != http.StatusTooManyRequests:
		// A 4xx that is not Graph's error JSON came from something in
		// between (a proxy, a gateway): it says nothing about the object,
		// so a 404 here must never pass for "not a member" or "deleted".
		return 0, access.Wrap(access.CodeUnavailable, ae, "Microsoft Graph answered %s with a %d %s page, not Graph's error JSON", cl.what, st, contentType(resp))
	case st == http.StatusTooManyRequests || st == http.StatusServiceUnavailable || st == http.StatusGatewayTimeout:
		wait, ok := retryAfter(resp.Header.Get("Retry-After"), c.clock.Now())
		if st == http.StatusTooManyRequests {
			if !ok {
				wait = c.backoff
			}
			e := access.Wrap(access.CodeRateLimited, ae, "Microsoft Graph is throttling keycard (%s)", cl.what)
			e.RetryAt = c.clock.Now().Add(wait)
			c.hold.Until(e.RetryAt, c.clock.Now(), MaxHold)
			return wait, e
		}
		e := access.Wrap(access.CodeUnavailable, ae, "Microsoft Graph is unavailable (%s)", cl.what)
		if ok {
			e.RetryAt = c.clock.Now().Add(wait)
			c.hold.Until(e.RetryAt, c.clock.Now(), MaxHold)
			return wait, e
		}
		return 0, e
	case st >= 500:
		return 0, access.Wrap(access.CodeUnavailable, ae, "Microsoft Graph is unavailable (%s)", cl.what)
	case st == http.StatusNotFound:
		return -1, access.Wrap(access.CodeNotFound, ae, "Microsoft Graph: not found (%s)", cl.what)
	case st == http.StatusUnauthorized:
		return -1, access.Wrap(access.CodeForbidden, ae, "Microsoft Graph refused keycard's access token (%s)", cl.what)
	case st == http.StatusForbidden:
		return -1, access.Wrap(access.CodeForbidden, ae, "Microsoft Graph refused (%s): the app registration lacks a permission, or the group is not one it may change", cl.what)
	}
	return -1, access.Wrap(access.CodeInvalid, ae, "Microsoft Graph refused the request (%s)", cl.what)
}

// retryAfter reads Retry-After: delay-seconds or an HTTP date (RFC 9110
// §10.2.3). Seconds are not rounded down: the wait is at least what it says.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d, true
		}
		return 0, true
	}
	return 0, false
}

func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

func contentType(resp *http.Response) string {
	ct := resp.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err == nil {
		return mt
	}
	if ct == "" {
		return "no content type"
	}
	return ct
}

// redactURL drops the query (filters hold emails; skip/delta tokens are
// opaque state) from a URL for an error.
func redactURL(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i]
	}
	return u
}

// stripURL keeps a transport error's cause without the full URL.
func stripURL(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) && ue.Unwrap() != nil {
		return ue.Unwrap()
	}
	return err
}

// page is one Graph collection page.
type page[T any] struct {
	Value     []T    `json:"value"`
	NextLink  string `json:"@odata.nextLink"`
	DeltaLink string `json:"@odata.deltaLink"`
}

// check refuses a page without a "value" array: an answer that is not a
// collection must not pass for an empty one.
func (p *page[T]) check(what string) error {
	if p.Value == nil {
		return access.Errorf(access.CodeUnavailable, "Microsoft Graph answered %s without a value array", what)
	}
	return nil
}

// collect follows @odata.nextLink from first to the end, one deadline per
// page, refusing a link it has followed before.
func collect[T any](c *Connector, ctx context.Context, first, what string) ([]T, error) {
	var out []T
	seen := map[string]bool{}
	next := first
	for pages := 0; next != ""; pages++ {
		if pages >= maxPages || seen[next] {
			return nil, access.Errorf(access.CodeUnavailable, "Microsoft Graph paging did not end (%s, %d pages)", what, pages)
		}
		seen[next] = true
		var p page[T]
		if err := c.do(ctx, call{method: http.MethodGet, url: next, what: what}, &p); err != nil {
			return nil, err
		}
		if err := p.check(what); err != nil {
			return nil, err
		}
		out = append(out, p.Value...)
		next = p.NextLink
	}
	return out, nil
}

func asAPI(err error, target **apiError) bool { return errors.As(err, target) }

// MaxHold bounds the connector's own hold after a Retry-After: for at most
// this long after the answer, calls are refused without being sent. A
// header far in the future (a bad clock, a hostile proxy) must not stop
// every call, removals included, for longer.
const MaxHold = connectors.MaxHold

// waitTurn honours the last Retry-After (held across calls: Graph's
// Retry-After applies to the app, not to the one request that drew it): it
// waits it out when that is within maxWait and ctx's deadline, else it
// refuses the call without sending anything (CodeRateLimited with RetryAt).
func (c *Connector) waitTurn(ctx context.Context, what string) error {
	nb, held, cause := c.hold.Wait(ctx, c.clock.Now(), c.maxWait, c.sleep)
	if !held || cause == nil {
		return nil
	}
	e := access.Wrap(access.CodeRateLimited, fmt.Errorf("graph: %w", cause), "Microsoft Graph asked keycard to wait (%s); retry after %s", what, nb.UTC().Format(time.RFC3339))
	e.RetryAt = nb
	return e
}
