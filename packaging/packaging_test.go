package packaging

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// unit parses a systemd unit file into section -> key -> values (a key may
// repeat, e.g. SystemCallFilter=).
func unit(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]map[string][]string{}
	sec := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			sec = strings.Trim(line, "[]")
			out[sec] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || sec == "" {
				t.Fatalf("%s: malformed line %q", path, line)
			}
			out[sec][k] = append(out[sec][k], v)
		}
	}
	return out
}

func TestUnitHardening(t *testing.T) {
	u := unit(t, "keycard.service")
	svc := u["Service"]
	want := []struct{ key, value string }{
		{"ExecStart", "/usr/local/bin/keycard serve"},
		{"ExecReload", "/bin/kill -HUP $MAINPID"},
		{"Restart", "on-failure"},
		{"EnvironmentFile", "/etc/keycard/keycard.env"},
		{"Environment", "KEYCARD_DB=/var/lib/keycard/keycard.db"},
		{"Environment", "KEYCARD_HTTP_ADDR=127.0.0.1:8080"},
		{"DynamicUser", "yes"},
		{"StateDirectory", "keycard"},
		{"ProtectSystem", "strict"},
		{"ProtectHome", "yes"},
		{"PrivateTmp", "yes"},
		{"PrivateDevices", "yes"},
		{"NoNewPrivileges", "yes"},
		{"CapabilityBoundingSet", ""},
		{"RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"},
		{"SystemCallFilter", "@system-service"},
		{"MemoryDenyWriteExecute", "yes"},
		{"LockPersonality", "yes"},
		{"ProtectKernelTunables", "yes"},
		{"ProtectKernelModules", "yes"},
		{"ProtectKernelLogs", "yes"},
		{"ProtectControlGroups", "yes"},
		{"RestrictNamespaces", "yes"},
		{"UMask", "0077"},
	}
	for _, w := range want {
		found := false
		for _, v := range svc[w.key] {
			found = found || v == w.value
		}
		if !found {
			t.Errorf("[Service] lacks %s=%s (has %q)", w.key, w.value, svc[w.key])
		}
	}
	for _, k := range []string{"User", "Group", "AmbientCapabilities"} {
		for _, v := range svc[k] {
			if v != "" {
				t.Errorf("[Service] %s=%s: the unit must run as a DynamicUser with no capabilities", k, v)
			}
		}
	}
	for _, e := range svc["Environment"] {
		if regexp.MustCompile(`(?i)TOKEN|SECRET`).MatchString(e) {
			t.Errorf("a secret in the unit (readable by any local user via systemctl show): %s", e)
		}
	}
	if got := u["Install"]["WantedBy"]; len(got) != 1 || got[0] != "multi-user.target" {
		t.Errorf("[Install] WantedBy=%q", got)
	}
}

// TestUnitVerifies runs systemd's own checks when systemd-analyze exists:
// verify (syntax, known directives) and, where supported, the offline
// security score, which must stay "OK" (at most 2.0 of 10; --threshold counts
// in tenths).
func TestUnitVerifies(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	// verify wants ExecStart's binary to exist: point it at one that does.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("keycard.service")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "keycard.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(src), "/usr/local/bin/keycard", self)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(sa, "security", "--offline=yes", "--threshold=20", path).CombinedOutput()
	if err != nil && strings.Contains(string(out), "unrecognized option") {
		t.Logf("this systemd-analyze has no offline security check: %s", strings.TrimSpace(string(out)))
		return
	}
	if err != nil {
		t.Fatalf("systemd-analyze security: exposure above 2.0: %v\n%s", err, out)
	}
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case
	args string
}

func dockerfile(t *testing.T, path string) []instruction {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []instruction
	var cur strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		trim := strings.TrimSpace(line)
		if strings.HasPrefix(trim, "#") || (trim == "" && cur.Len() == 0) {
			continue
		}
		if strings.HasSuffix(trim, `\`) {
			cur.WriteString(strings.TrimSuffix(trim, `\`) + " ")
			continue
		}
		cur.WriteString(trim)
		full := strings.TrimSpace(cur.String())
		cur.Reset()
		if full == "" {
			continue
		}
		cmd, args, _ := strings.Cut(full, " ")
		out = append(out, instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)})
	}
	return out
}

// TestDockerfile checks the image's properties without Docker: multi-stage,
// a static trimmed build carrying the version, a distroless or scratch
// runtime running as a numeric non-root user, the database on the volume,
// nothing fetched with ADD, no port published while the ops listener is on
// loopback.
func TestDockerfile(t *testing.T) {
	ins := dockerfile(t, filepath.Join("..", "Dockerfile"))
	var stages []int // index of each FROM
	for i, in := range ins {
		if in.cmd == "FROM" {
			stages = append(stages, i)
		}
		if in.cmd == "ADD" {
			t.Errorf("ADD %s: use COPY (ADD fetches URLs and unpacks archives unverified)", in.args)
		}
	}
	if len(stages) < 2 {
		t.Fatalf("%d stages: want a builder and a runtime", len(stages))
	}
	build, final := ins[:stages[len(stages)-1]], ins[stages[len(stages)-1]:]
	if !regexp.MustCompile(`^golang:\S+ AS \w+`).MatchString(ins[stages[0]].args) {
		t.Errorf("builder FROM %s: want golang:… AS name", ins[stages[0]].args)
	}
	if base := final[0].args; !strings.HasPrefix(base, "gcr.io/distroless/static") && base != "scratch" {
		t.Errorf("runtime FROM %s: want distroless/static or scratch", base)
	}
	var goBuild string
	for _, in := range build {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			goBuild = in.args
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "keycard/internal/buildinfo.version=${VERSION}", "keycard/internal/buildinfo.commit=${COMMIT}", "keycard/internal/buildinfo.date=${DATE}"} {
		if !strings.Contains(goBuild, want) {
			t.Errorf("the go build step lacks %s: %q", want, goBuild)
		}
	}

	env := map[string]string{}
	var user string
	var volumes, exposed []string
	for _, in := range final {
		switch in.cmd {
		case "ENV":
			for _, kv := range strings.Fields(in.args) {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
		case "USER":
			user = in.args
		case "VOLUME":
			volumes = append(volumes, strings.Fields(in.args)...)
		case "EXPOSE":
			exposed = append(exposed, in.args)
		case "RUN":
			t.Errorf("RUN in the runtime stage (%s): it has no shell", in.args)
		}
	}
	uid, _, _ := strings.Cut(user, ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		t.Errorf("USER %q: want a numeric non-root uid", user)
	}
	if len(volumes) != 1 || volumes[0] != "/var/lib/keycard" {
		t.Errorf("VOLUME %q: want /var/lib/keycard", volumes)
	}
	for _, k := range []string{"KEYCARD_DB", "KEYCARD_BACKUP_DIR", "TMPDIR"} {
		if v := env[k]; v != "/var/lib/keycard" && !strings.HasPrefix(v, "/var/lib/keycard/") {
			t.Errorf("ENV %s=%q: every write must land on the volume (read-only root)", k, v)
		}
	}
	addr := env["KEYCARD_HTTP_ADDR"]
	loopback := addr == "" || strings.HasPrefix(addr, "127.") || strings.HasPrefix(addr, "[::1]") || strings.HasPrefix(addr, "localhost:")
	if loopback && len(exposed) > 0 {
		t.Errorf("EXPOSE %q while the ops listener is on loopback (%q)", exposed, addr)
	}
	if !loopback && len(exposed) == 0 {
		t.Errorf("KEYCARD_HTTP_ADDR=%s listens beyond loopback but nothing is EXPOSEd", addr)
	}
}

// TestDockerignore keeps secrets and history out of the build context and
// keeps in what the build embeds.
func TestDockerignore(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines[l] = true
		}
	}
	for _, want := range []string{".git", "**/*.db", "**/*.db.ops-token"} {
		if !lines[want] {
			t.Errorf(".dockerignore lacks %s", want)
		}
	}
	for l := range lines {
		if strings.HasPrefix(l, "docs") || l == "*" || l == "go.mod" || l == "go.sum" {
			t.Errorf(".dockerignore drops %s, which the build needs (demo.go embeds docs/examples)", l)
		}
	}
}
