package entra

import (
	"net/http"
	"testing"
)

// TestDefaultTransportHonoursProxyAndTrustStore: without an HTTPClient the
// connector uses http.DefaultTransport's settings: HTTPS_PROXY/NO_PROXY
// (corporate proxies) and the system roots, which SSL_CERT_FILE extends.
func TestDefaultTransportHonoursProxyAndTrustStore(t *testing.T) {
	t.Setenv("HTTPS_PROXY", "http://proxy.corp.example:3128")
	t.Setenv("NO_PROXY", "graph.microsoft.us")
	c, err := New(Config{TenantID: "t1", ClientID: "c1", ClientSecret: "x"})
	if err != nil {
		t.Fatal(err)
	}
	tr, ok := c.hc.Transport.(*http.Transport)
	if !ok || tr.Proxy == nil {
		t.Fatalf("transport %T has no proxy function", c.hc.Transport)
	}
	if tr.TLSClientConfig != nil && tr.TLSClientConfig.RootCAs != nil {
		t.Fatal("a private root pool replaces the system trust store")
	}
	for target, want := range map[string]string{
		"https://graph.microsoft.com/v1.0/users": "http://proxy.corp.example:3128",
		"https://graph.microsoft.us/v1.0/users":  "",
	} {
		req, _ := http.NewRequest(http.MethodGet, target, nil)
		u, err := tr.Proxy(req)
		got := ""
		if u != nil {
			got = u.String()
		}
		if err != nil || got != want {
			t.Errorf("proxy for %s = %q, %v; want %q", target, got, err, want)
		}
	}
	if c.scope != "https://graph.microsoft.com/.default" || c.graph != DefaultGraphURL {
		t.Fatalf("defaults: scope %q graph %q", c.scope, c.graph)
	}
}
