package auditstream

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"keycard/access"
)

// Batch is a run of consecutive events, encoded: Body is one line per event
// in the stream's format.
type Batch struct {
	First, Last uint64 // seq of the first and last event
	Count       int
	Body        []byte
}

// Sink takes batches. Deliver returns nil only once the whole batch is
// durably accepted (written and synced, or acknowledged with a 2xx); any
// error means "try this batch again later". Format is the line format the
// sink expects its batches in (the Stream encodes them).
type Sink interface {
	Deliver(ctx context.Context, b Batch) error
	Format() Format
	Close() error
}

// Headers of the generic webhook.
const (
	HeaderSignature = "X-Keycard-Signature" // "sha256=" + hex HMAC-SHA256(secret, timestamp + "." + body)
	HeaderTimestamp = "X-Keycard-Timestamp" // Unix seconds when the request was signed
	HeaderBatch     = "X-Keycard-Batch"     // "<first seq>-<last seq>": a retried batch repeats it
)

// SinkOptions are what Open needs besides the Config.
type SinkOptions struct {
	Stdout io.Writer    // for "stdout"; os.Stdout in main
	Clock  access.Clock // signs the webhook's timestamp
	// Client posts to the HTTPS receiver; nil is a client with Timeout and
	// TLS 1.2 or newer. Tests pass the httptest server's client.
	Client  *http.Client
	Timeout time.Duration // one POST, answer included; default 30s
}

// Open builds the sink c describes. For a file it opens (creating, mode
// 0640) the file for append now, so a bad path fails at start.
func Open(c Config, opt SinkOptions) (Sink, error) {
	switch c.Kind {
	case KindStdout:
		if opt.Stdout == nil {
			opt.Stdout = os.Stdout
		}
		return &writerSink{w: opt.Stdout, format: c.Format}, nil
	case KindFile:
		f, err := os.OpenFile(c.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvURL, err)
		}
		return &writerSink{w: f, f: f, format: c.Format}, nil
	case KindHTTPS:
		if opt.Clock == nil {
			return nil, errors.New("auditstream: Open needs a clock for an HTTPS sink")
		}
		if opt.Timeout <= 0 {
			opt.Timeout = 30 * time.Second
		}
		cl := &http.Client{Transport: &http.Transport{
			Proxy:           http.ProxyFromEnvironment,
			TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12},
		}}
		if opt.Client != nil {
			c := *opt.Client
			cl = &c
		}
		// A redirect is answered, not followed: following it could resend
		// the signed events to another host or downgrade to plain http.
		// The 3xx is a failed attempt the log shows, retried like a 5xx.
		cl.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		return &httpSink{url: c.URL, secret: c.Secret, format: c.Format, client: cl, clock: opt.Clock, timeout: opt.Timeout}, nil
	}
	return nil, errors.New("auditstream: no stream configured")
}

// writerSink appends to stdout or a file; for a file every batch is synced
// before it counts as delivered.
type writerSink struct {
	w      io.Writer
	f      *os.File // nil for stdout: a pipe cannot be synced
	format Format
}

func (s *writerSink) Format() Format { return orJSON(s.format) }

func (s *writerSink) Deliver(_ context.Context, b Batch) error {
	if s.f == nil {
		_, err := s.w.Write(b.Body)
		return err
	}
	fi, err := s.f.Stat()
	if err != nil {
		return err
	}
	if _, err := s.f.Write(b.Body); err != nil {
		// A short write (disk full) would leave half a line that the retry
		// then follows: cut the file back to where the batch began.
		_ = s.f.Truncate(fi.Size())
		return err
	}
	return s.f.Sync()
}

func (s *writerSink) Close() error {
	if s.f != nil {
		return s.f.Close()
	}
	return nil
}

// httpSink POSTs each batch to the webhook or to Splunk HEC.
type httpSink struct {
	url     string
	secret  Secret
	format  Format
	client  *http.Client
	clock   access.Clock
	timeout time.Duration
}

// StatusError is a receiver's non-2xx answer.
type StatusError struct {
	Code int
	Body string // the first 256 bytes, for the log
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("audit stream receiver answered %d: %s", e.Code, e.Body)
}

func (s *httpSink) Deliver(ctx context.Context, b Batch) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(b.Body))
	if err != nil {
		return err
	}
	req.Header.Set(HeaderBatch, strconv.FormatUint(b.First, 10)+"-"+strconv.FormatUint(b.Last, 10))
	req.Header.Set("User-Agent", "keycard-auditstream")
	switch s.format {
	case FormatSplunkHEC:
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Splunk "+string(s.secret))
	default:
		ts := strconv.FormatInt(s.clock.Now().Unix(), 10)
		req.Header.Set("Content-Type", "application/x-ndjson")
		req.Header.Set(HeaderTimestamp, ts)
		req.Header.Set(HeaderSignature, Sign(s.secret, ts, b.Body))
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return redactErr(err, s.secret)
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
	if resp.StatusCode/100 != 2 {
		return &StatusError{Code: resp.StatusCode, Body: strings.TrimSpace(string(head))}
	}
	return nil
}

func (s *httpSink) Format() Format { return orJSON(s.format) }

func orJSON(f Format) Format {
	if f == "" {
		return FormatJSON
	}
	return f
}

func (s *httpSink) Close() error {
	s.client.CloseIdleConnections()
	return nil
}

// redactErr keeps a transport error from carrying the secret (it never
// should, but the URL and headers pass through net/http's messages).
func redactErr(err error, secret Secret) error {
	if secret != "" && strings.Contains(err.Error(), string(secret)) {
		return errors.New(strings.ReplaceAll(err.Error(), string(secret), "[redacted]"))
	}
	return err
}

// Sign is the webhook's X-Keycard-Signature value: "sha256=" and the hex
// HMAC-SHA256, keyed with the secret, of the timestamp header, a dot and
// the raw body. Signing the timestamp lets a receiver refuse a replayed
// request (see Verify).
func Sign(secret Secret, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify is the receiver's side of Sign: the signature must match (compared
// in constant time) and the timestamp must be within tolerance of now.
func Verify(secret Secret, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) error {
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%s: %q is not Unix seconds", HeaderTimestamp, timestamp)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%s: %s off from now, beyond %s (replayed or clock skew)", HeaderTimestamp, d.Round(time.Second), tolerance)
	}
	if !hmac.Equal([]byte(signature), []byte(Sign(secret, timestamp, body))) {
		return fmt.Errorf("%s does not match the body", HeaderSignature)
	}
	return nil
}
