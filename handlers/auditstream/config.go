package auditstream

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
)

// Environment variables (SPEC "Configuration").
const (
	EnvURL    = "KEYCARD_AUDIT_STREAM_URL"
	EnvSecret = "KEYCARD_AUDIT_STREAM_SECRET"
	EnvFormat = "KEYCARD_AUDIT_STREAM_FORMAT"
)

// Format is the shape of each line on the wire.
type Format string

const (
	// FormatJSON is one Record per line (NDJSON).
	FormatJSON Format = "json"
	// FormatSplunkHEC wraps each Record in Splunk HTTP Event Collector's
	// envelope: {"time":…,"host":…,"source":"keycard","sourcetype":"keycard:audit","event":{…}}.
	FormatSplunkHEC Format = "splunk-hec"
)

// Kind is where the stream goes.
type Kind int

const (
	KindNone   Kind = iota // no stream configured
	KindStdout             // "stdout"
	KindFile               // "file:PATH"
	KindHTTPS              // an https:// URL (http:// only to a loopback host)
)

// minSecret is the shortest HMAC key (or HEC token) accepted: RFC 2104
// advises a key no shorter than the hash output; 16 bytes is a floor that
// still rejects "secret" and "changeme".
const minSecret = 16

// Secret is the HMAC key or HEC token: it never prints, in logs or errors.
type Secret string

// LogValue redacts the secret for slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// String redacts the secret for fmt.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// MarshalJSON redacts the secret for encoders.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// Config is the parsed stream configuration.
type Config struct {
	Kind   Kind
	URL    string // the https URL (KindHTTPS)
	Path   string // the file (KindFile)
	Secret Secret
	Format Format
}

// Enabled reports whether a stream is configured.
func (c Config) Enabled() bool { return c.Kind != KindNone }

// LogValue describes the configuration without the secret.
func (c Config) LogValue() slog.Value {
	dest := map[Kind]string{KindNone: "none", KindStdout: "stdout", KindFile: "file:" + c.Path, KindHTTPS: logURL(c.URL)}[c.Kind]
	return slog.GroupValue(slog.String("to", dest), slog.String("format", string(c.Format)), slog.Bool("secret_set", c.Secret != ""))
}

// ParseConfig reads KEYCARD_AUDIT_STREAM_URL, _SECRET and _FORMAT through
// getenv (os.Getenv in main). An unset URL is no stream and no error; any
// malformed value is an error naming its variable (never showing the secret).
func ParseConfig(getenv func(string) string) (Config, error) {
	raw := strings.TrimSpace(getenv(EnvURL))
	c := Config{Secret: Secret(getenv(EnvSecret)), Format: Format(strings.ToLower(strings.TrimSpace(getenv(EnvFormat))))}
	switch c.Format {
	case "":
		c.Format = FormatJSON
	case FormatJSON, FormatSplunkHEC:
	default:
		return Config{}, fmt.Errorf("%s: %q is not json or splunk-hec", EnvFormat, string(c.Format))
	}
	switch {
	case raw == "":
		if c.Secret != "" {
			return Config{}, fmt.Errorf("%s is set but %s is not: say where the stream goes", EnvSecret, EnvURL)
		}
		return Config{}, nil
	case raw == "stdout":
		c.Kind = KindStdout
		return c, nil
	case strings.HasPrefix(raw, "file:"):
		c.Kind, c.Path = KindFile, strings.TrimPrefix(raw, "file:")
		if c.Path == "" {
			return Config{}, fmt.Errorf("%s: file: needs a path (file:/var/log/keycard/audit.ndjson)", EnvURL)
		}
		return c, nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return Config{}, fmt.Errorf("%s: %q is not stdout, file:PATH or an https:// URL", EnvURL, redactURL(raw))
	}
	if u.User != nil {
		return Config{}, fmt.Errorf("%s: put credentials in %s, not in the URL", EnvURL, EnvSecret)
	}
	if u.Scheme == "http" && !loopback(u.Hostname()) {
		return Config{}, fmt.Errorf("%s: %s must use https (plain http is allowed only to a loopback host)", EnvURL, u.Redacted())
	}
	c.Kind, c.URL = KindHTTPS, u.String()
	if len(c.Secret) < minSecret {
		what := "the HMAC-SHA256 key the receiver verifies X-Keycard-Signature with"
		if c.Format == FormatSplunkHEC {
			what = "the Splunk HEC token"
		}
		if c.Secret == "" {
			return Config{}, fmt.Errorf("%s: required for an HTTPS stream (%s)", EnvSecret, what)
		}
		return Config{}, fmt.Errorf("%s: too short (%d characters; at least %d): it is %s", EnvSecret, len(c.Secret), minSecret, what)
	}
	return c, nil
}

func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// redactURL hides userinfo in a URL that did not parse well enough for
// url.URL.Redacted.
func redactURL(s string) string {
	if i := strings.Index(s, "@"); i >= 0 {
		if j := strings.Index(s, "://"); j >= 0 && j < i {
			return s[:j+3] + "xxxxx" + s[i:]
		}
	}
	return s
}

// logURL is the stream's URL as it may be logged: scheme, host and path,
// without user info or a query, where some receivers take their token
// (e.g. ?dd-api-key=).
func logURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Scheme + "://" + u.Host + u.Path
}
