package server

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	pgstore "keycard/store/postgres"
)

// Secret is a token: it never prints, in logs or in errors.
type Secret string

// LogValue redacts the secret for slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON redacts the secret for encoders (slog's JSON handler
// marshals structs with encoding/json).
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// String redacts the secret for fmt.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// Config is keycard's environment (SPEC "Configuration"). Every variable may
// also be given with the KEYCARD_ prefix.
type Config struct {
	SlackBotToken Secret        `envconfig:"SLACK_BOT_TOKEN"`
	SlackAppToken Secret        `envconfig:"SLACK_APP_TOKEN"`
	SlackAPIURL   string        `envconfig:"SLACK_API_URL" default:"https://slack.com/api/"`
	OktaOrgURL    string        `envconfig:"OKTA_CLIENT_ORGURL"`
	OktaToken     Secret        `envconfig:"OKTA_CLIENT_TOKEN"`
	Policy        string        `envconfig:"KEYCARD_POLICY" default:"policy.yaml"`
	DB            string        `envconfig:"KEYCARD_DB" default:"keycard.db"`
	HTTPAddr      string        `envconfig:"KEYCARD_HTTP_ADDR" default:"127.0.0.1:8080"`
	LogLevel      string        `envconfig:"KEYCARD_LOG_LEVEL" default:"info"`
	LogFormat     string        `envconfig:"KEYCARD_LOG_FORMAT" default:"text"`
	BackupDir     string        `envconfig:"KEYCARD_BACKUP_DIR"`
	BackupEvery   time.Duration `envconfig:"KEYCARD_BACKUP_EVERY" default:"24h"`
	BackupKeep    int           `envconfig:"KEYCARD_BACKUP_KEEP" default:"14"`
	// DatabaseURL, when set, keeps all state in PostgreSQL instead of the
	// bbolt file at DB, so several replicas can share it. A Secret: the URL
	// carries the password.
	DatabaseURL Secret `envconfig:"KEYCARD_DATABASE_URL"`
	// LeaseTTL is the leader lease's length with PostgreSQL: a killed
	// leader is replaced within LeaseTTL + LeaseTTL/3 (13.3 s at the
	// default), inside SPEC's 15 seconds. Tests shorten it.
	LeaseTTL time.Duration `envconfig:"KEYCARD_LEASE_TTL" default:"10s"`

	// IdPHTTPClient, when set, carries the Entra ID connector's HTTPS (token
	// authority and Graph) instead of a client over the system trust store:
	// tests give one that trusts their emulator's CA. Not read from the
	// environment; in production SSL_CERT_FILE and HTTPS_PROXY do this.
	IdPHTTPClient *http.Client `ignored:"true"`
	// IdPTimeout, when set, bounds each HTTP exchange of the okta, entra
	// and jumpcloud connectors instead of their default (10s): tests that
	// hold an emulator's answer shorten it. Not read from the environment.
	IdPTimeout time.Duration `ignored:"true"`
}

// LoadConfig reads the environment. Names are tried as written and with the
// KEYCARD_ prefix; a malformed value is one line naming the variable.
func LoadConfig() (Config, error) {
	// envconfig reads os.Getenv; stage prefixed aliases by name first.
	var cfg Config
	for _, name := range []string{"SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_API_URL", "OKTA_CLIENT_ORGURL", "OKTA_CLIENT_TOKEN"} {
		if v, ok := os.LookupEnv("KEYCARD_" + name); ok {
			if _, set := os.LookupEnv(name); !set {
				os.Setenv(name, v)
			}
		}
	}
	if err := envconfig.Process("", &cfg); err != nil {
		var pe *envconfig.ParseError
		if ok := asParseError(err, &pe); ok {
			return cfg, fmt.Errorf("%s: cannot read %q as %s", pe.KeyName, pe.Value, pe.TypeName)
		}
		return cfg, err
	}
	if _, err := ParseLevel(cfg.LogLevel); err != nil {
		return cfg, err
	}
	switch cfg.LogFormat {
	case "text", "json":
	default:
		return cfg, fmt.Errorf("KEYCARD_LOG_FORMAT: %q is not text or json", cfg.LogFormat)
	}
	if cfg.BackupEvery <= 0 {
		return cfg, fmt.Errorf("KEYCARD_BACKUP_EVERY: %s is not a positive duration", cfg.BackupEvery)
	}
	if cfg.DatabaseURL != "" {
		// Never repeat the value: it carries the password.
		if err := pgstore.CheckURL(string(cfg.DatabaseURL)); err != nil {
			return cfg, err
		}
		if cfg.BackupDir != "" {
			return cfg, fmt.Errorf("KEYCARD_BACKUP_DIR: keycard's own backups are bbolt files; with KEYCARD_DATABASE_URL back PostgreSQL up with pg_dump or your provider's snapshots (docs/ha.md) and unset KEYCARD_BACKUP_DIR")
		}
	}
	if cfg.LeaseTTL < time.Second || cfg.LeaseTTL > time.Minute {
		return cfg, fmt.Errorf("KEYCARD_LEASE_TTL: %s is not between 1s and 1m (default 10s: a dead leader is replaced within 4/3 of it)", cfg.LeaseTTL)
	}
	if u, err := url.Parse(cfg.SlackAPIURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return cfg, fmt.Errorf("SLACK_API_URL: %q is not an http(s) URL like https://slack.com/api/", cfg.SlackAPIURL)
	} else if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		// The bot and app tokens travel with every call: cleartext only
		// where it cannot leave the machine (as OKTA_CLIENT_ORGURL).
		return cfg, fmt.Errorf("SLACK_API_URL: %q must use https:// (plain http is allowed only on a loopback address)", cfg.SlackAPIURL)
	}
	if cfg.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(cfg.HTTPAddr); err != nil {
			return cfg, fmt.Errorf("KEYCARD_HTTP_ADDR: %q is not host:port (for example 127.0.0.1:8080)", cfg.HTTPAddr)
		}
	}
	if !strings.HasSuffix(cfg.SlackAPIURL, "/") {
		cfg.SlackAPIURL += "/" // slack-go concatenates method names onto it
	}
	return cfg, nil
}

func asParseError(err error, target **envconfig.ParseError) bool {
	pe, ok := err.(*envconfig.ParseError)
	if ok {
		*target = pe
	}
	return ok
}

func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("KEYCARD_LOG_LEVEL: %q is not debug, info, warn or error", s)
}

// MissingForServe names the variables `keycard serve` needs and lacks.
func (c Config) MissingForServe() []string {
	var out []string
	if c.SlackBotToken == "" {
		out = append(out, "SLACK_BOT_TOKEN")
	}
	if c.SlackAppToken == "" {
		out = append(out, "SLACK_APP_TOKEN")
	}
	return out
}

// isLoopbackHost is true for localhost and loopback IP addresses.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
