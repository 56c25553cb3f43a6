package entra

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"keycard/access"
	"keycard/connectors"
)

// Connector is the Entra ID directory, provisioner and leaver feed. It is
// unscoped: the wiring wraps it with connectors.Scoped. Safe for
// concurrent use.
type Connector struct {
	cred       azcore.TokenCredential
	scope      string // https://graph-host/.default
	graph      string // base URL, no trailing slash
	graphHost  string // scheme://host the bearer token may go to
	hc         *http.Client
	timeout    time.Duration
	maxRetries int
	maxWait    time.Duration
	backoff    time.Duration
	clock      access.Clock
	sleep      connectors.SleepFunc
	groups     connectors.GroupCache

	hold connectors.Hold // the last Retry-After: nothing is sent before it
}

var _ access.Directory = (*Connector)(nil)
var _ access.Provisioner = (*Connector)(nil)

// New builds a Connector. It makes no network call: Check does, at start.
func New(cfg Config) (*Connector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	graph := cfg.GraphURL
	if graph == "" {
		graph = DefaultGraphURL
	}
	graph, err := ValidateGraphURL(graph)
	if err != nil {
		return nil, err
	}
	gu, _ := url.Parse(graph)
	c := &Connector{
		graph:      graph,
		graphHost:  gu.Scheme + "://" + gu.Host,
		scope:      gu.Scheme + "://" + gu.Host + "/.default",
		timeout:    connectors.DurationOr(cfg.Timeout, DefaultTimeout),
		maxRetries: cfg.MaxRetries,
		maxWait:    connectors.DurationOr(cfg.MaxWait, DefaultMaxWait),
		backoff:    connectors.DurationOr(cfg.Backoff, DefaultBackoff),
		clock:      connectors.ClockOr(cfg.Clock),
		sleep:      connectors.SleepOr(cfg.Sleep),
		groups:     connectors.GroupCache{TTL: connectors.DurationOr(cfg.GroupCacheTTL, DefaultGroupCacheTTL)},
	}
	if c.maxRetries <= 0 {
		c.maxRetries = DefaultMaxRetries
	}
	c.hc = connectors.HTTPClient(cfg.HTTPClient)
	c.hc.Timeout = 0 // per-exchange deadlines come from the context
	c.cred = cfg.Credential
	if c.cred == nil {
		if c.cred, err = credential(cfg, c.hc, c.timeout); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// credential builds the azidentity credential the config selects.
// Instance discovery is disabled (see the package doc).
func credential(cfg Config, hc *http.Client, timeout time.Duration) (azcore.TokenCredential, error) {
	host := cfg.AuthorityHost
	if host == "" {
		host = DefaultAuthorityHost
	}
	co := azcore.ClientOptions{
		Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: host},
		Transport: hc,
		Retry:     policy.RetryOptions{MaxRetries: 2, TryTimeout: timeout, RetryDelay: time.Second, MaxRetryDelay: 5 * time.Second},
	}
	var (
		cred azcore.TokenCredential
		err  error
	)
	switch {
	case cfg.ClientSecret != "":
		cred, err = azidentity.NewClientSecretCredential(cfg.TenantID, cfg.ClientID, cfg.ClientSecret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: true})
	case cfg.CertificatePath != "":
		data, rerr := os.ReadFile(cfg.CertificatePath)
		if rerr != nil {
			return nil, access.Errorf(access.CodeInvalid, "AZURE_CLIENT_CERTIFICATE_PATH %s cannot be read", cfg.CertificatePath)
		}
		var pw []byte
		if cfg.CertificatePassword != "" {
			pw = []byte(cfg.CertificatePassword)
		}
		certs, key, perr := azidentity.ParseCertificates(data, pw)
		if perr != nil {
			return nil, access.Errorf(access.CodeInvalid, "AZURE_CLIENT_CERTIFICATE_PATH %s holds no usable certificate and key (wrong AZURE_CLIENT_CERTIFICATE_PASSWORD?)", cfg.CertificatePath)
		}
		cred, err = azidentity.NewClientCertificateCredential(cfg.TenantID, cfg.ClientID, certs, key,
			&azidentity.ClientCertificateCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: true})
	case cfg.FederatedTokenFile != "":
		cred, err = azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions: co, ClientID: cfg.ClientID, TenantID: cfg.TenantID,
			TokenFilePath: cfg.FederatedTokenFile, DisableInstanceDiscovery: true,
		})
	default:
		opts := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: co}
		if cfg.ClientID != "" {
			opts.ID = azidentity.ClientID(cfg.ClientID)
		}
		cred, err = azidentity.NewManagedIdentityCredential(opts)
	}
	if err != nil {
		return nil, access.Errorf(access.CodeInvalid, "Entra %s credential: %s", cfg.Method(), firstLine(err.Error()))
	}
	return cred, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return strings.TrimSpace(s[:i])
	}
	return s
}

var aadsts = regexp.MustCompile(`AADSTS\d+`)

// token gets a Graph token. A refusal by the authority (wrong secret,
// unknown app, unregistered certificate) becomes CodeForbidden "the IdP
// refused keycard's credentials" with the AADSTS code only: azidentity's
// error text is a whole HTTP dump.
func (c *Connector) token(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	tok, err := c.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{c.scope}})
	if err == nil {
		return tok.Token, nil
	}
	var afe *azidentity.AuthenticationFailedError
	if errors.As(err, &afe) && afe.RawResponse != nil && afe.RawResponse.StatusCode >= 400 && afe.RawResponse.StatusCode < 500 {
		code := aadsts.FindString(err.Error())
		if code == "" {
			code = fmt.Sprintf("HTTP %d", afe.RawResponse.StatusCode)
		}
		return "", access.Wrap(access.CodeForbidden, fmt.Errorf("entra token: %s", code),
			"the IdP refused keycard's credentials (Entra ID %s)", code)
	}
	if ctx.Err() != nil {
		return "", access.Wrap(access.CodeUnavailable, ctx.Err(), "the Entra ID token authority did not answer in time")
	}
	return "", access.Wrap(access.CodeUnavailable, errors.New(firstLine(err.Error())), "the Entra ID token authority could not be reached")
}

// Check proves the credentials and Graph access at start: a token, then
// one cheap Graph read.
func (c *Connector) Check(ctx context.Context) error {
	var page struct {
		Value []struct {
			ID string `json:"id"`
		} `json:"value"`
	}
	return c.do(ctx, call{method: http.MethodGet, url: c.graph + "/groups?$select=id&$top=1", what: "check Graph access"}, &page)
}

// Name says which IdP this is, for messages.
func (c *Connector) Name() string { return "Entra ID" }
