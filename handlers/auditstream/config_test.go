package auditstream

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	const key = "0123456789abcdef0123"
	cases := []struct {
		name    string
		env     map[string]string
		want    Config
		wantErr string // a fragment of the error; "" for none
	}{
		{name: "unset", env: nil, want: Config{}},
		{name: "stdout", env: map[string]string{EnvURL: "stdout"}, want: Config{Kind: KindStdout, Format: FormatJSON}},
		{name: "file", env: map[string]string{EnvURL: "file:/var/log/keycard/audit.ndjson"}, want: Config{Kind: KindFile, Path: "/var/log/keycard/audit.ndjson", Format: FormatJSON}},
		{name: "file hec lines", env: map[string]string{EnvURL: "file:a.log", EnvFormat: "splunk-hec"}, want: Config{Kind: KindFile, Path: "a.log", Format: FormatSplunkHEC}},
		{name: "https webhook", env: map[string]string{EnvURL: "https://siem.example.com/in", EnvSecret: key},
			want: Config{Kind: KindHTTPS, URL: "https://siem.example.com/in", Secret: key, Format: FormatJSON}},
		{name: "splunk", env: map[string]string{EnvURL: "https://splunk.example.com:8088/services/collector/event", EnvSecret: "12345678-1234-1234-1234-123456789012", EnvFormat: "SPLUNK-HEC"},
			want: Config{Kind: KindHTTPS, URL: "https://splunk.example.com:8088/services/collector/event", Secret: "12345678-1234-1234-1234-123456789012", Format: FormatSplunkHEC}},
		{name: "http loopback", env: map[string]string{EnvURL: "http://127.0.0.1:9000/x", EnvSecret: key},
			want: Config{Kind: KindHTTPS, URL: "http://127.0.0.1:9000/x", Secret: key, Format: FormatJSON}},
		{name: "http localhost v6", env: map[string]string{EnvURL: "http://[::1]:9000/x", EnvSecret: key},
			want: Config{Kind: KindHTTPS, URL: "http://[::1]:9000/x", Secret: key, Format: FormatJSON}},
		{name: "http remote", env: map[string]string{EnvURL: "http://siem.example.com/in", EnvSecret: key}, wantErr: EnvURL + ": http://siem.example.com/in must use https"},
		{name: "no secret", env: map[string]string{EnvURL: "https://siem.example.com/in"}, wantErr: EnvSecret + ": required"},
		{name: "short secret", env: map[string]string{EnvURL: "https://siem.example.com/in", EnvSecret: "changeme"}, wantErr: EnvSecret + ": too short"},
		{name: "secret without url", env: map[string]string{EnvSecret: key}, wantErr: EnvSecret + " is set but " + EnvURL},
		{name: "bad format", env: map[string]string{EnvURL: "stdout", EnvFormat: "cef"}, wantErr: EnvFormat + `: "cef" is not json or splunk-hec`},
		{name: "not a url", env: map[string]string{EnvURL: "siem.example.com"}, wantErr: EnvURL + `: "siem.example.com" is not stdout`},
		{name: "ftp", env: map[string]string{EnvURL: "ftp://siem.example.com"}, wantErr: EnvURL},
		{name: "empty file", env: map[string]string{EnvURL: "file:"}, wantErr: EnvURL + ": file: needs a path"},
		{name: "userinfo", env: map[string]string{EnvURL: "https://u:hunter2@siem.example.com", EnvSecret: key}, wantErr: "put credentials in " + EnvSecret},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseConfig(func(k string) string { return c.env[k] })
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, c.wantErr)
				}
				for _, secret := range []string{key, "changeme", "hunter2"} {
					if strings.Contains(err.Error(), secret) {
						t.Fatalf("error shows a secret: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestSecretNeverPrints(t *testing.T) {
	const raw = "0123456789abcdef-very-secret"
	c := Config{Kind: KindHTTPS, URL: "https://siem.example.com", Secret: raw, Format: FormatJSON}
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("start", "stream", c, "secret", c.Secret)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("start", "stream", c, "secret", c.Secret, "cfg", fmt.Sprintf("%v %+v %s", c, c, c.Secret))
	if strings.Contains(buf.String(), raw) {
		t.Fatalf("secret logged:\n%s", buf.String())
	}
	if !strings.Contains(buf.String(), "secret_set") || !strings.Contains(buf.String(), "[redacted]") {
		t.Fatalf("log does not describe the stream:\n%s", buf.String())
	}
}

// The stream's URL is logged without a token a receiver takes in its query
// string or user info (issue 14 review).
func TestConfigLogsNoURLToken(t *testing.T) {
	c, err := ParseConfig(func(k string) string {
		return map[string]string{EnvURL: "https://intake.example.com/v1/input?dd-api-key=SECRETKEY", EnvSecret: "0123456789abcdef0123"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	var buf strings.Builder
	slog.New(slog.NewTextHandler(&buf, nil)).Info("audit stream on", "stream", c)
	if strings.Contains(buf.String(), "SECRETKEY") || !strings.Contains(buf.String(), "https://intake.example.com/v1/input") {
		t.Fatalf("logged %s", buf.String())
	}
}
