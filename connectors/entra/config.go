package entra

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"keycard/access"
	"keycard/connectors"
)

// Defaults.
const (
	DefaultAuthorityHost = "https://login.microsoftonline.com/"
	DefaultGraphURL      = "https://graph.microsoft.com/v1.0"
	DefaultTimeout       = connectors.DefaultTimeout
	// DefaultMaxRetries bounds the retries of one call after 429/5xx.
	DefaultMaxRetries = 4
	// DefaultMaxWait is the longest Retry-After keycard waits inside one
	// call; a longer one is returned as CodeRateLimited with RetryAt, for
	// the caller's queue to honour.
	DefaultMaxWait = 30 * time.Second
	// DefaultBackoff is the first pause after a 5xx without Retry-After;
	// it doubles per attempt (1s, 2s, 4s, 8s).
	DefaultBackoff       = time.Second
	DefaultGroupCacheTTL = connectors.DefaultGroupCacheTTL
)

// Config configures a Connector. Its String, GoString and LogValue never
// print the client secret or the certificate password.
type Config struct {
	TenantID string // AZURE_TENANT_ID
	ClientID string // AZURE_CLIENT_ID (for managed identity: a user-assigned identity, optional)
	// One credential, or none for managed identity.
	ClientSecret        string // AZURE_CLIENT_SECRET
	CertificatePath     string // AZURE_CLIENT_CERTIFICATE_PATH (PEM or PKCS#12)
	CertificatePassword string // AZURE_CLIENT_CERTIFICATE_PASSWORD
	FederatedTokenFile  string // AZURE_FEDERATED_TOKEN_FILE (workload identity)

	AuthorityHost string // AZURE_AUTHORITY_HOST; default DefaultAuthorityHost
	GraphURL      string // KEYCARD_GRAPH_URL; default DefaultGraphURL

	// Timeout bounds every HTTP exchange (one page, one token request).
	Timeout time.Duration
	// MaxRetries, MaxWait and Backoff shape retries (see the defaults).
	MaxRetries int
	MaxWait    time.Duration
	Backoff    time.Duration
	// HTTPClient supplies the transport (proxy, TLS). Default: a clone of
	// http.DefaultTransport, which honours HTTPS_PROXY/NO_PROXY and the
	// system trust store (SSL_CERT_FILE).
	HTTPClient *http.Client
	// Credential, when set, replaces the credential built from the fields
	// above (tests, or a caller with its own azidentity chain).
	Credential azcore.TokenCredential
	// Clock is the source of now (RetryAt, event times). Default
	// access.SystemClock.
	Clock access.Clock
	// Sleep waits d or until ctx ends; tests pass one that moves a fake
	// clock. Default: a real timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// GroupCacheTTL, default DefaultGroupCacheTTL.
	GroupCacheTTL time.Duration
}

// Method names the credential the config selects.
func (c Config) Method() string {
	switch {
	case c.Credential != nil:
		return "custom"
	case c.ClientSecret != "":
		return "client secret"
	case c.CertificatePath != "":
		return "certificate"
	case c.FederatedTokenFile != "":
		return "workload identity"
	}
	return "managed identity"
}

// settings are what String, GoString (%#v) and LogValue (slog) show: the
// config without its secrets.
func (c Config) settings() connectors.Settings {
	return connectors.Settings{Type: "entra.Config", List: []connectors.Setting{
		connectors.Text("TenantID", "tenant_id", c.TenantID),
		connectors.Text("ClientID", "client_id", c.ClientID),
		connectors.Word("Credential", "credential", c.Method()),
		connectors.Secret("ClientSecret", "client_secret", c.ClientSecret),
		connectors.Text("CertificatePath", "certificate_path", c.CertificatePath),
		connectors.Secret("CertificatePassword", "certificate_password", c.CertificatePassword),
		connectors.Text("FederatedTokenFile", "federated_token_file", c.FederatedTokenFile),
		connectors.Text("AuthorityHost", "authority_host", c.AuthorityHost),
		connectors.Text("GraphURL", "graph_url", c.GraphURL),
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

// FromEnv reads the AZURE_* variables (azidentity's own names) and
// KEYCARD_GRAPH_URL through lookup (os.LookupEnv in main) and validates
// them. An error names the variable in one line and never holds a secret.
func FromEnv(lookup func(string) (string, bool)) (Config, error) {
	get := func(k string) string {
		v, _ := lookup(k)
		return strings.TrimSpace(v)
	}
	c := Config{
		TenantID:            get("AZURE_TENANT_ID"),
		ClientID:            get("AZURE_CLIENT_ID"),
		ClientSecret:        get("AZURE_CLIENT_SECRET"),
		CertificatePath:     get("AZURE_CLIENT_CERTIFICATE_PATH"),
		CertificatePassword: get("AZURE_CLIENT_CERTIFICATE_PASSWORD"),
		FederatedTokenFile:  get("AZURE_FEDERATED_TOKEN_FILE"),
		AuthorityHost:       get("AZURE_AUTHORITY_HOST"),
		GraphURL:            get("KEYCARD_GRAPH_URL"),
	}
	return c, c.Validate()
}

// Validate checks the config as SPEC "Configuration" requires: tenant and
// client id with exactly one credential, or no credential at all (managed
// identity); an https authority; KEYCARD_GRAPH_URL https except loopback.
func (c Config) Validate() error {
	var creds []string
	if c.ClientSecret != "" {
		creds = append(creds, "AZURE_CLIENT_SECRET")
	}
	if c.CertificatePath != "" {
		creds = append(creds, "AZURE_CLIENT_CERTIFICATE_PATH")
	}
	if c.FederatedTokenFile != "" {
		creds = append(creds, "AZURE_FEDERATED_TOKEN_FILE")
	}
	if len(creds) > 1 {
		return access.Errorf(access.CodeInvalid, "set only one Entra credential, not %s", strings.Join(creds, " and "))
	}
	if len(creds) == 1 && c.Credential == nil {
		if c.TenantID == "" {
			return access.Errorf(access.CodeInvalid, "AZURE_TENANT_ID is empty (required with %s)", creds[0])
		}
		if c.ClientID == "" {
			return access.Errorf(access.CodeInvalid, "AZURE_CLIENT_ID is empty (required with %s)", creds[0])
		}
	}
	if c.TenantID != "" && !tenantShaped(c.TenantID) {
		return access.Errorf(access.CodeInvalid, "AZURE_TENANT_ID %q is not a tenant id or domain", c.TenantID)
	}
	if c.ClientID != "" && strings.ContainsAny(c.ClientID, "/?# ") {
		return access.Errorf(access.CodeInvalid, "AZURE_CLIENT_ID %q is not an application id", c.ClientID)
	}
	if c.AuthorityHost != "" {
		u, err := url.Parse(c.AuthorityHost)
		if err != nil || u.Scheme != "https" || u.Hostname() == "" || u.User != nil || u.RawQuery != "" {
			return access.Errorf(access.CodeInvalid, "AZURE_AUTHORITY_HOST %q must be an https:// URL like %s", c.AuthorityHost, DefaultAuthorityHost)
		}
	}
	if c.GraphURL != "" {
		if _, err := ValidateGraphURL(c.GraphURL); err != nil {
			return err
		}
	}
	return nil
}

func tenantShaped(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// ValidateGraphURL checks KEYCARD_GRAPH_URL: https://, except http:// on a
// loopback address (tests); a path (the API version) is kept. It returns
// the URL without a trailing slash.
func ValidateGraphURL(raw string) (string, error) {
	s := strings.TrimRight(strings.TrimSpace(raw), "/")
	if s == "" {
		return "", access.Errorf(access.CodeInvalid, "KEYCARD_GRAPH_URL is empty")
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", access.Errorf(access.CodeInvalid, "KEYCARD_GRAPH_URL %q is not a URL", s)
	}
	switch {
	case u.Hostname() == "":
		return "", access.Errorf(access.CodeInvalid, "KEYCARD_GRAPH_URL %q has no host", s)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return "", access.Errorf(access.CodeInvalid, "KEYCARD_GRAPH_URL %q must be a base URL like %s", s, DefaultGraphURL)
	case u.Scheme == "https":
		return s, nil
	case u.Scheme == "http" && connectors.IsLoopback(u.Hostname()):
		return s, nil
	}
	return "", access.Errorf(access.CodeInvalid, "KEYCARD_GRAPH_URL %q must use https:// (plain http only on a loopback address)", s)
}
