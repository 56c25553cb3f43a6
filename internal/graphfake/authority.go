package graphfake

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
)

// authority serves the Entra token authority: OpenID metadata, instance
// discovery and the v2.0 token endpoint (client credentials only).
func (s *Server) authority(w http.ResponseWriter, r *http.Request, seg []string) {
	switch {
	case len(seg) == 3 && seg[0] == "common" && seg[1] == "discovery" && seg[2] == "instance" && r.Method == http.MethodGet:
		host := strings.TrimPrefix(s.URL, "https://")
		writeJSON(w, http.StatusOK, map[string]any{
			"tenant_discovery_endpoint": s.URL + "/" + s.opts.Tenant + "/v2.0/.well-known/openid-configuration",
			"api-version":               "1.1",
			"metadata": []any{map[string]any{
				"preferred_network": host, "preferred_cache": host, "aliases": []string{host},
			}},
		})
	case len(seg) == 4 && seg[1] == "v2.0" && seg[2] == ".well-known" && seg[3] == "openid-configuration" && r.Method == http.MethodGet:
		if !s.knownTenant(seg[0]) {
			tokenError(w, http.StatusBadRequest, "invalid_tenant", 90002, "AADSTS90002: Tenant '"+seg[0]+"' not found.")
			return
		}
		base := s.URL + "/" + seg[0]
		writeJSON(w, http.StatusOK, map[string]any{
			"token_endpoint":                        base + "/oauth2/v2.0/token",
			"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
			"issuer":                                s.URL + "/" + s.opts.Tenant + "/v2.0",
			"jwks_uri":                              base + "/discovery/v2.0/keys",
			"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
			"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
			"tenant_region_scope":                   "EU",
			"cloud_instance_name":                   "graphfake.local",
		})
	case len(seg) == 4 && seg[1] == "oauth2" && seg[2] == "v2.0" && seg[3] == "token" && r.Method == http.MethodPost:
		s.token(w, r, seg[0])
	default:
		tokenError(w, http.StatusNotFound, "invalid_request", 90011, "AADSTS90011: Request not supported.")
	}
}

func (s *Server) knownTenant(t string) bool {
	return t == s.opts.Tenant || t == "organizations" || t == "common"
}

// tokenError is the authority's error shape (not Graph's).
func tokenError(w http.ResponseWriter, status int, code string, aadsts int, desc string) {
	writeJSON(w, status, map[string]any{
		"error":             code,
		"error_description": desc,
		"error_codes":       []int{aadsts},
		"timestamp":         "2026-01-05 09:00:00Z",
		"trace_id":          "00000000-0000-0000-0000-000000000000",
		"correlation_id":    "00000000-0000-0000-0000-000000000000",
	})
}

func (s *Server) token(w http.ResponseWriter, r *http.Request, tenant string) {
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request", 900144, "AADSTS900144: The request body must contain the following parameter: 'grant_type'.")
		return
	}
	f := r.PostForm
	switch {
	case tenant != s.opts.Tenant:
		tokenError(w, http.StatusBadRequest, "invalid_request", 90002, "AADSTS90002: Tenant '"+tenant+"' not found.")
		return
	case f.Get("grant_type") != "client_credentials":
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type", 70003, "AADSTS70003: The app requested an unsupported grant type.")
		return
	case f.Get("client_id") != s.opts.ClientID:
		tokenError(w, http.StatusBadRequest, "unauthorized_client", 700016, "AADSTS700016: Application with identifier '"+f.Get("client_id")+"' was not found in the directory.")
		return
	case !hasDefaultScope(f.Get("scope")):
		tokenError(w, http.StatusBadRequest, "invalid_scope", 1002012, "AADSTS1002012: The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.")
		return
	}
	switch {
	case f.Get("client_secret") != "":
		if f.Get("client_secret") != s.opts.Secret {
			tokenError(w, http.StatusUnauthorized, "invalid_client", 7000215, "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '"+s.opts.ClientID+"'.")
			return
		}
	case f.Get("client_assertion") != "":
		if f.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" || !s.assertionOK(f.Get("client_assertion")) {
			tokenError(w, http.StatusUnauthorized, "invalid_client", 700027, "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application.")
			return
		}
	default:
		tokenError(w, http.StatusUnauthorized, "invalid_client", 7000218, "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
		return
	}
	tok := s.issueLocked()
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type":     "Bearer",
		"expires_in":     int(tokenLifetime.Seconds()),
		"ext_expires_in": int(tokenLifetime.Seconds()),
		"access_token":   tok,
	})
}

// assertionOK accepts a registered federated token as it is, or a JWT whose
// iss and sub are the client id, signed (RS256 or PS256) by a registered
// certificate.
func (s *Server) assertionOK(jwt string) bool {
	for _, t := range s.opts.FederatedTokens {
		if t == jwt {
			return true
		}
	}
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return false
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	var claims struct {
		Iss string `json:"iss"`
		Sub string `json:"sub"`
	}
	if !decodeSeg(parts[0], &hdr) || !decodeSeg(parts[1], &claims) {
		return false
	}
	if claims.Iss != s.opts.ClientID || claims.Sub != s.opts.ClientID {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return false
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	for _, c := range s.opts.Certificates {
		pub, ok := c.PublicKey.(*rsa.PublicKey)
		if !ok {
			continue
		}
		switch hdr.Alg {
		case "RS256":
			if rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig) == nil {
				return true
			}
		case "PS256":
			if rsa.VerifyPSS(pub, crypto.SHA256, sum[:], sig, nil) == nil {
				return true
			}
		}
	}
	return false
}

func decodeSeg(seg string, v any) bool {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	return err == nil && json.Unmarshal(b, v) == nil
}

// hasDefaultScope reports whether one of the space-separated scopes is a
// resource's /.default (MSAL adds openid, profile and offline_access).
func hasDefaultScope(scopes string) bool {
	for _, sc := range strings.Fields(scopes) {
		if strings.HasSuffix(sc, "/.default") {
			return true
		}
	}
	return false
}
