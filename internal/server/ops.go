package server

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"keycard/handlers"
	"keycard/policy"
	"keycard/store"
)

// jobNames are the scheduled jobs whose last success /metrics reports.
var jobNames = []string{"offboarding.poll", "offboarding.sweep", "backup"}

// backupConfig is where and how often hot backups go.
type backupConfig struct {
	Dir   string
	Every time.Duration
	Keep  int
}

// backupLoop takes a backup every cfg.Every.
func backupLoop(ctx context.Context, svc *handlers.Service, db *store.DB, cfg backupConfig, log *slog.Logger) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-svc.Clock().After(cfg.Every):
		}
		path, err := db.Backup(cfg.Dir, cfg.Keep, svc.Clock().Now(), nil)
		if err != nil {
			log.Error("scheduled backup failed", "err", err)
			_ = svc.Alert("backup_failed", "", "The scheduled database backup failed: "+err.Error(), nil)
			continue
		}
		svc.MarkJob("backup")
		log.Info("backup written", "path", path)
	}
}

// opsServer serves /healthz, /readyz, /metrics and POST /backup.
type opsServer struct {
	svc *handlers.Service
	// ping proves the store answers (a read transaction).
	ping func() error
	// backupTo writes a hot backup (bbolt's store.DB.Backup); nil with
	// PostgreSQL, whose backups are the operator's pg_dump.
	backupTo func(dir string, keep int, now time.Time, through func(io.Writer) io.Writer) (string, error)
	backup   backupConfig
	// replicated: PostgreSQL, where /readyz names this replica's role.
	replicated bool
	connected  func() bool // Slack socket connected
	hasIdP     bool        // an IdP connector (not static) must have answered recently
	started    time.Time
	// policyPath is the policy file POST /policy/apply reloads.
	policyPath string
	// token guards the POST endpoints: only someone who can read the file
	// beside the database (the operator) can back up or change the policy.
	token string
}

func (o *opsServer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", o.readyz)
	mux.Handle("GET /metrics", o.svc.MetricsHandler(jobNames, o.connected))
	mux.HandleFunc("POST /backup", o.authorized(o.backupNow))
	mux.HandleFunc("POST /policy/apply", o.authorized(o.policyApply))
	return mux
}

// readyz is 200 when this replica can serve Slack: its store answers, its
// socket is up and its IdP answered lately. Its body is "ready" and the
// role ("role: leader" or "role: standby"; always leader with bbolt), also
// in the X-Keycard-Role header: a standby is ready too — it answers
// whatever Slack delivers to it; only the singleton work waits for the
// lease.
func (o *opsServer) readyz(w http.ResponseWriter, r *http.Request) {
	var problems []string
	if err := o.ping(); err != nil {
		what := "store: "
		if o.replicated {
			what = "database: PostgreSQL unreachable: "
		}
		problems = append(problems, what+err.Error())
	}
	if o.connected != nil && !o.connected() {
		problems = append(problems, "slack: socket not connected")
	}
	if o.hasIdP {
		now := o.svc.Clock().Now()
		last := o.svc.Metrics().LastIdPAnswer()
		if now.Sub(o.started) > 10*time.Minute && (last.IsZero() || now.Sub(last) > 15*time.Minute) {
			problems = append(problems, "idp: no successful answer in the last 15 minutes")
		}
	}
	role := "standby"
	if o.svc.IsLeader() {
		role = "leader"
	}
	w.Header().Set("X-Keycard-Role", role)
	if len(problems) > 0 {
		http.Error(w, strings.Join(problems, "\n")+"\nrole: "+role, http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintf(w, "ready\nrole: %s\n", role)
}

func (o *opsServer) backupNow(w http.ResponseWriter, r *http.Request) {
	if o.backupTo == nil {
		http.Error(w, "keycard keeps its state in PostgreSQL (KEYCARD_DATABASE_URL): back it up with pg_dump or your provider's snapshots (docs/ha.md)", http.StatusConflict)
		return
	}
	if o.backup.Dir == "" {
		http.Error(w, "KEYCARD_BACKUP_DIR is not set", http.StatusConflict)
		return
	}
	path, err := o.backupTo(o.backup.Dir, o.backup.Keep, o.svc.Clock().Now(), nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	o.svc.MarkJob("backup")
	fmt.Fprintln(w, path)
}

// authorized requires the ops token (Authorization: Bearer …): the ops
// listener also serves /metrics, which is often exposed to a scraper.
func (o *opsServer) authorized(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if o.token == "" || subtle.ConstantTimeCompare([]byte(got), []byte(o.token)) != 1 {
			http.Error(w, "missing or wrong ops token (the CLI reads it from the file beside KEYCARD_DB)", http.StatusUnauthorized)
			return
		}
		h(w, r)
	}
}

// OpsTokenPath is the ops token's file, beside the database.
func OpsTokenPath(db string) string { return db + ".ops-token" }

// opsToken creates a fresh random token at start, mode 0600, beside the
// database: the operator's CLI reads it to reach POST /backup and
// POST /policy/apply on a running keycard.
func opsToken(db string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(b)
	path := OpsTokenPath(db)
	tmp := path + ".tmp"
	// Whoever can write the database directory must not get the token: a
	// leftover (or planted) temp file or symlink is removed, never reused or
	// followed, and the file is created afresh with mode 0600.
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("ops token: %w", err)
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return "", fmt.Errorf("ops token: %w", err)
	}
	if _, err := f.WriteString(tok + "\n"); err != nil {
		f.Close()
		os.Remove(tmp)
		return "", fmt.Errorf("ops token: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("ops token: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("ops token: %w", err)
	}
	return tok, nil
}

// ReadOpsToken is the CLI side of opsToken.
func ReadOpsToken(db string) string {
	b, err := os.ReadFile(OpsTokenPath(db))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// policyApply is `keycard policy apply`: reload the policy file now, as
// the named admin; staged when the policy in force requires approval,
// unless emergency (with a reason) is asked for. The listener is loopback
// by default: whoever can reach it can already edit the policy file.
func (o *opsServer) policyApply(w http.ResponseWriter, r *http.Request) {
	by := strings.TrimSpace(r.FormValue("by"))
	if by == "" {
		http.Error(w, "say who is applying the change (by=EMAIL)", http.StatusBadRequest)
		return
	}
	change := handlers.PolicyChange{By: by, Emergency: r.FormValue("emergency") == "1", Reason: r.FormValue("reason"),
		Load: func() (*policy.Set, error) { return policy.Load(o.policyPath) }}
	next, staged, err := o.svc.ChangePolicy(change)
	switch {
	case err != nil:
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
	case staged:
		fmt.Fprintf(w, "staged: a second keycard admin must approve it in Slack; %s stays in force\n", next.Hash)
	case change.Emergency:
		fmt.Fprintf(w, "EMERGENCY change applied and alerted: %s is in force\n", next.Hash)
	default:
		fmt.Fprintf(w, "applied: %s is in force\n", next.Hash)
	}
}
