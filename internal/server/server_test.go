package server

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"keycard/access"
	"keycard/handlers"
	"keycard/internal/adapt"
	"keycard/internal/fakeclock"
	"keycard/policy"
	"keycard/store"
)

func clearEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "SLACK_") || strings.HasPrefix(name, "OKTA_") || strings.HasPrefix(name, "KEYCARD_") {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
}

func seedDB(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keycard.db")
	db, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	for i := 0; i < 3; i++ {
		err := db.Update(now.Add(time.Duration(i)*time.Minute), func(tx *store.Tx) error {
			r := access.Request{Policy: "grafana-viewer", App: "Grafana", Role: "Viewer", Requester: access.Person{Email: fmt.Sprintf("u%d@example.com", i)},
				State: access.StatePending, CreatedAt: tx.Now(), Duration: time.Hour}
			if err := tx.PutRequest(&r); err != nil {
				return err
			}
			_, err := tx.Append(access.Event{Type: access.EvRequestSubmitted, Actor: r.Requester.Email, Subject: r.Requester.Email, RequestID: r.ID})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	return path
}

func TestConfig(t *testing.T) {
	cases := []struct {
		name    string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, c Config)
	}{
		{"defaults", nil, "", func(t *testing.T, c Config) {
			if c.Policy != "policy.yaml" || c.DB != "keycard.db" || c.HTTPAddr != "127.0.0.1:8080" || c.SlackAPIURL != "https://slack.com/api/" || c.LogLevel != "info" {
				t.Fatalf("%+v", c)
			}
		}},
		{"prefixed alias", map[string]string{"KEYCARD_SLACK_BOT_TOKEN": "xoxb-2", "KEYCARD_OKTA_CLIENT_ORGURL": "https://acme.okta.com"}, "", func(t *testing.T, c Config) {
			if c.SlackBotToken != "xoxb-2" || c.OktaOrgURL != "https://acme.okta.com" {
				t.Fatalf("%+v", c)
			}
		}},
		{"api url gets its slash", map[string]string{"SLACK_API_URL": "http://127.0.0.1:9/api"}, "", func(t *testing.T, c Config) {
			if c.SlackAPIURL != "http://127.0.0.1:9/api/" {
				t.Fatal(c.SlackAPIURL)
			}
		}},
		{"empty http addr disables", map[string]string{"KEYCARD_HTTP_ADDR": ""}, "", func(t *testing.T, c Config) {
			if c.HTTPAddr != "" {
				t.Fatal(c.HTTPAddr)
			}
		}},
		{"bad level", map[string]string{"KEYCARD_LOG_LEVEL": "loud"}, "KEYCARD_LOG_LEVEL", nil},
		{"bad format", map[string]string{"KEYCARD_LOG_FORMAT": "xml"}, "KEYCARD_LOG_FORMAT", nil},
		{"bad backup interval", map[string]string{"KEYCARD_BACKUP_EVERY": "soon"}, "KEYCARD_BACKUP_EVERY", nil},
		{"bad backup keep", map[string]string{"KEYCARD_BACKUP_KEEP": "many"}, "KEYCARD_BACKUP_KEEP", nil},
		{"bad slack url", map[string]string{"SLACK_API_URL": "slack.com/api"}, "SLACK_API_URL", nil},
		{"plain http slack url off loopback", map[string]string{"SLACK_API_URL": "http://slack.example.com/api/"}, "SLACK_API_URL", nil},
		{"plain http slack url on localhost", map[string]string{"SLACK_API_URL": "http://localhost:9/api/"}, "", func(t *testing.T, c Config) {}},
		{"bad http addr", map[string]string{"KEYCARD_HTTP_ADDR": "8080"}, "KEYCARD_HTTP_ADDR", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			cfg, err := LoadConfig()
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("error %v, want one line naming %s", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, cfg)
		})
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	cfg := Config{SlackBotToken: "xoxb-very-secret", SlackAppToken: "xapp-very-secret", OktaToken: "00-okta-secret"}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("config", "cfg", cfg, "bot", cfg.SlackBotToken)
	text := fmt.Sprintf("%v %+v %s", cfg, cfg, cfg.OktaToken) + logs.String()
	for _, s := range []string{"very-secret", "okta-secret"} {
		if strings.Contains(text, s) {
			t.Fatalf("a token leaked: %s", text)
		}
	}
}

// TestMetricsExposition scrapes the real /metrics endpoint and checks every
// metric keycard documents (docs/operations.md) by name, type and value: a
// metric that disappears or changes type fails here.
func TestMetricsExposition(t *testing.T) {
	path := seedDB(t)
	db, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	clock := fakeclock.New(time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC))
	// One active grant whose end passed 90 s ago: the expiry worker is late.
	err = db.Update(clock.Now(), func(tx *store.Tx) error {
		r := access.Request{Policy: "grafana-viewer", App: "Grafana", Role: "Viewer", Requester: access.Person{Email: "late@example.com"},
			State: access.StateActive, CreatedAt: clock.Now().Add(-2 * time.Hour), Duration: time.Hour,
			ProvisionedAt: clock.Now().Add(-time.Hour - 90*time.Second), EndsAt: clock.Now().Add(-90 * time.Second)}
		return tx.PutRequest(&r)
	})
	if err != nil {
		t.Fatal(err)
	}
	svc := handlers.New(adapt.Store(db), nil, nil, clock, handlers.Options{})
	svc.MarkJob("backup")
	o := &opsServer{svc: svc, ping: func() error { return db.View(func(*store.Tx) error { return nil }) }, backupTo: db.Backup, started: clock.Now(), connected: func() bool { return true }}
	srv := httptest.NewServer(o.handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics is not the Prometheus text format: %v", err)
	}
	for _, c := range []struct {
		name  string
		typ   dto.MetricType
		label string // name=value the series must carry, if any
		value float64
	}{
		{"keycard_requests_total", dto.MetricType_COUNTER, "outcome=submitted", 0},
		{"keycard_idp_errors_total", dto.MetricType_COUNTER, "", 0},
		{"keycard_approval_seconds", dto.MetricType_HISTOGRAM, "", 0}, // value: the count
		{"keycard_provisioning_seconds", dto.MetricType_HISTOGRAM, "", 0},
		{"keycard_outbox_depth", dto.MetricType_GAUGE, "", 0},
		{"keycard_outbox_oldest_age_seconds", dto.MetricType_GAUGE, "", 0},
		{"keycard_active_grants", dto.MetricType_GAUGE, "policy=grafana-viewer", 1},
		{"keycard_pending_requests", dto.MetricType_GAUGE, "policy=grafana-viewer", 3},
		{"keycard_audit_events", dto.MetricType_GAUGE, "", 3},
		{"keycard_job_last_success_timestamp_seconds", dto.MetricType_GAUGE, "job=backup", float64(clock.Now().Unix())},
		{"keycard_expiry_lag_seconds", dto.MetricType_GAUGE, "", 90},
		{"keycard_slack_socket_connected", dto.MetricType_GAUGE, "", 1},
		{"keycard_leader", dto.MetricType_GAUGE, "", 1}, // bbolt: the sole replica leads
		{"keycard_lease_age_seconds", dto.MetricType_GAUGE, "", 0},
		{"go_goroutines", dto.MetricType_GAUGE, "", -1}, // -1: any value
		{"process_cpu_seconds_total", dto.MetricType_COUNTER, "", -1},
	} {
		t.Run(c.name, func(t *testing.T) {
			mf := families[c.name]
			if mf == nil {
				t.Fatalf("/metrics lacks %s", c.name)
			}
			if mf.GetType() != c.typ {
				t.Fatalf("%s is a %s, want %s", c.name, mf.GetType(), c.typ)
			}
			for _, m := range mf.GetMetric() {
				if c.label != "" && !hasLabel(m, c.label) {
					continue
				}
				var v float64
				switch c.typ {
				case dto.MetricType_COUNTER:
					v = m.GetCounter().GetValue()
				case dto.MetricType_GAUGE:
					v = m.GetGauge().GetValue()
				case dto.MetricType_HISTOGRAM:
					v = float64(m.GetHistogram().GetSampleCount())
					if n := len(m.GetHistogram().GetBucket()); n != 11 {
						t.Fatalf("%s has %d buckets, want 11 with +Inf (docs/operations.md)", c.name, n)
					}
				}
				if c.value >= 0 && v != c.value {
					t.Fatalf("%s{%s} = %v, want %v", c.name, c.label, v, c.value)
				}
				return
			}
			t.Fatalf("%s has no series with %s", c.name, c.label)
		})
	}
	for _, c := range []struct {
		name      string
		connected bool
		code      int
	}{{"socket up", true, 200}, {"socket down", false, 503}} {
		o.connected = func() bool { return c.connected }
		rec := httptest.NewRecorder()
		o.handler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		if rec.Code != c.code || (c.code == 503 && !strings.Contains(rec.Body.String(), "slack")) {
			t.Fatalf("readyz with %s: %d %s", c.name, rec.Code, rec.Body)
		}
	}
}

func hasLabel(m *dto.Metric, nameValue string) bool {
	name, value, _ := strings.Cut(nameValue, "=")
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

func TestPolicyApplyEndpoint(t *testing.T) {
	path := seedDB(t)
	db, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	pol := filepath.Join(t.TempDir(), "policy.yaml")
	orig, _ := os.ReadFile("../../docs/examples/policy-static.yaml")
	os.WriteFile(pol, orig, 0o600)
	set, err := policy.Load(pol)
	if err != nil {
		t.Fatal(err)
	}
	svc := handlers.New(adapt.Store(db), nil, set, fakeclock.New(time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC)), handlers.Options{})
	token, err := opsToken(path)
	if err != nil {
		t.Fatal(err)
	}
	if ReadOpsToken(path) != token {
		t.Fatal("the CLI does not read the token the server wrote")
	}
	if st, _ := os.Stat(OpsTokenPath(path)); st.Mode().Perm() != 0o600 {
		t.Fatalf("ops token file mode %v", st.Mode())
	}
	o := &opsServer{svc: svc, ping: func() error { return db.View(func(*store.Tx) error { return nil }) }, backupTo: db.Backup, policyPath: pol, token: token}
	bearer := token
	post := func(form string) (int, string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/policy/apply", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer "+bearer)
		o.handler().ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	for _, wrong := range []string{"", "not-the-token"} {
		bearer = wrong
		if code, _ := post("by=frank%40example.com&emergency=1&reason=x"); code != 401 {
			t.Fatalf("apply with token %q: %d, want 401", wrong, code)
		}
	}
	bearer = token
	if code, _ := post(""); code != 400 {
		t.Fatalf("apply without --by: %d", code)
	}
	os.WriteFile(pol, append(orig, []byte("change_approval: true\n")...), 0o600)
	if code, body := post("by=frank%40example.com"); code != 200 || !strings.HasPrefix(body, "applied") || !svc.Policy().ChangeApproval {
		t.Fatalf("apply: %d %s", code, body)
	}
	os.WriteFile(pol, append(orig, []byte("change_approval: true\noffboarding_sla: 12h\n")...), 0o600)
	if code, body := post("by=frank%40example.com"); code != 200 || !strings.HasPrefix(body, "staged") {
		t.Fatalf("a guarded change was not staged: %d %s", code, body)
	}
	if code, body := post("by=frank%40example.com&emergency=1"); code != 422 || !strings.Contains(body, "reason") {
		t.Fatalf("emergency without a reason: %d %s", code, body)
	}
	if code, body := post("by=frank%40example.com&emergency=1&reason=lockout"); code != 200 || !strings.HasPrefix(body, "EMERGENCY") || svc.Policy().OffboardingSLA != 12*time.Hour {
		t.Fatalf("emergency: %d %s", code, body)
	}
}

// TestOpsTokenIgnoresPlantedTempFile: someone who can write the database
// directory plants the temp file (world-readable) or a symlink to a file they
// read; the token must not land in either, and ends fresh with mode 0600.
func TestOpsTokenIgnoresPlantedTempFile(t *testing.T) {
	for _, kind := range []string{"file", "symlink"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			db := filepath.Join(dir, "keycard.db")
			tmp := OpsTokenPath(db) + ".tmp"
			spy := filepath.Join(dir, "spy")
			if err := os.WriteFile(spy, []byte("planted\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			switch kind {
			case "file":
				if err := os.WriteFile(tmp, []byte("planted\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(tmp, 0o644); err != nil {
					t.Fatal(err)
				}
			case "symlink":
				if err := os.Symlink(spy, tmp); err != nil {
					t.Fatal(err)
				}
			}
			tok, err := opsToken(db)
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(spy); string(b) != "planted\n" {
				t.Fatalf("the token was written through the planted symlink: %q", b)
			}
			st, err := os.Lstat(OpsTokenPath(db))
			if err != nil {
				t.Fatal(err)
			}
			if !st.Mode().IsRegular() || st.Mode().Perm() != 0o600 {
				t.Fatalf("token file mode %v, want a regular file 0600", st.Mode())
			}
			if ReadOpsToken(db) != tok {
				t.Fatal("token file does not hold the fresh token")
			}
		})
	}
}
