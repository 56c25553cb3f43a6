package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/robfig/cron/v3"

	"keycard/access"
)

// Scheduled review jobs (SPEC "reviews:"), by the name the job ledger uses.
const (
	JobAdminReport   = "admin_access_report"
	JobContractor    = "contractor_expiry"
	JobCompliance    = "compliance_package"
	JobCertification = "certification"
)

// Job-ledger outcomes.
const (
	RunRunning = "running"
	RunOK      = "ok"
	RunFailed  = "failed"
	RunMissed  = "missed"
)

// maxMissedRecorded bounds how many missed slots one catch-up writes to the
// ledger one by one ("@every 1m" after a week down would be 10,080); the
// rest are summed up in the last entry's detail.
const maxMissedRecorded = 100

// reviewIdle is the longest the review loop sleeps without re-reading the
// policy (a SIGHUP may change a schedule) and the clock.
const reviewIdle = time.Minute

// Publisher delivers a scheduled report to Slack. Declared here, beside its
// consumer: the bot implements it, so handlers never builds Block Kit. A
// Publish with a Key it has already delivered must not post again.
type Publisher interface {
	Publish(ctx context.Context, r Report) error
}

// Report is one scheduled post: domain values the bot renders, and the
// files (each CSV with its manifest.json) attached to it.
type Report struct {
	Key     string // job/slot (or campaign id): the idempotency key of the post
	Job     string
	Channel string // "#name" or a channel id; "" means the security channel
	Slot    time.Time

	Admin      *AdminReport
	Compliance *ComplianceReport
	Campaign   *CampaignSummary

	Files []ReportFile
}

// ReportFile is one attachment.
type ReportFile struct {
	Name    string
	Content []byte
}

// artefactHash is the SHA-256 the ledger records for a report: over its
// files' names and contents, in order.
func (r Report) artefactHash() string {
	h := sha256.New()
	for _, f := range r.Files {
		fmt.Fprintf(h, "%s\x00%d\x00", f.Name, len(f.Content))
		h.Write(f.Content)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// scheduledJob is one configured job.
type scheduledJob struct {
	name string
	spec string
	run  func(ctx context.Context, pub Publisher, slot time.Time) (JobRun, error)
}

// jobs lists the jobs the policy in force schedules.
func (s *Service) jobs() []scheduledJob {
	r := s.Policy().Reviews
	var out []scheduledJob
	if j := r.AdminAccessReport; j != nil {
		out = append(out, scheduledJob{JobAdminReport, j.Schedule, s.runAdminReport})
	}
	if j := r.ContractorExpiry; j != nil {
		out = append(out, scheduledJob{JobContractor, j.Schedule, s.runContractorExpiry})
	}
	if j := r.CompliancePackage; j != nil {
		out = append(out, scheduledJob{JobCompliance, j.Schedule, s.runCompliance})
	}
	if j := r.Certification; j != nil {
		out = append(out, scheduledJob{JobCertification, j.Schedule, s.runCertification})
	}
	return out
}

// location is the review jobs' time zone (reviews.timezone, default UTC).
func (s *Service) location() *time.Location {
	if loc := s.Policy().Reviews.Timezone; loc != nil {
		return loc
	}
	return time.UTC
}

// RunReviews drives the scheduled review jobs and the open campaigns until
// ctx ends: each pass runs what is due (ReviewTick), then sleeps on the
// service clock's After (time.After in production, a fake clock's in tests)
// until the next slot, a reminder or a due date.
func (s *Service) RunReviews(ctx context.Context, pub Publisher) error {
	for {
		next, err := s.ReviewTick(ctx, pub)
		if err != nil && ctx.Err() == nil {
			s.log.Error("review jobs", "err", err)
		}
		wait := pause(s.clock.Now(), reviewIdle, next)
		select {
		case <-ctx.Done():
			return nil
		case <-s.clock.After(wait):
		}
	}
}

// ReviewTick runs every job slot that is due at the clock's now, then the
// campaigns' reminders and due dates, and returns when something is next
// due. A slot already `ok` in the ledger never runs again (no double post
// after a restart); when keycard was down over several slots only the
// latest runs, once, and the earlier ones are recorded as missed and
// alerted. On the very first start a job begins from now: no catch-up.
func (s *Service) ReviewTick(ctx context.Context, pub Publisher) (time.Time, error) {
	var next time.Time
	earliest := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	var firstErr error
	for _, j := range s.jobs() {
		t, err := s.tickJob(ctx, pub, j)
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("job %s: %w", j.name, err)
		}
		earliest(t)
	}
	t, err := s.tickCampaigns(ctx, pub)
	if err != nil && firstErr == nil {
		firstErr = err
	}
	earliest(t)
	return next, firstErr
}

const jobCursor = "job.last_slot." // + job name: the last slot handled (RFC 3339)

func (s *Service) tickJob(ctx context.Context, pub Publisher, j scheduledJob) (time.Time, error) {
	sched, err := cron.ParseStandard(j.spec)
	if err != nil {
		return time.Time{}, fmt.Errorf("schedule %q: %w", j.spec, err)
	}
	loc := s.location()
	now := s.clock.Now()
	last, err := s.lastSlot(j.name)
	if err != nil {
		return time.Time{}, err
	}
	if last.IsZero() {
		// First start: begin from now, so installing keycard does not
		// post a backlog.
		if err := s.SetCursor(jobCursor+j.name, now.UTC().Format(time.RFC3339Nano)); err != nil {
			return time.Time{}, err
		}
		return sched.Next(now.In(loc)), nil
	}
	var due []time.Time
	skipped := 0
	for t := sched.Next(last.In(loc)); !t.IsZero() && !t.After(now); t = sched.Next(t) {
		if len(due) == maxMissedRecorded+1 {
			due = append(due[:0:0], due[1:]...)
			skipped++
		}
		due = append(due, t)
	}
	if len(due) == 0 {
		return sched.Next(last.In(loc)), nil
	}
	slot := due[len(due)-1]
	if missed := due[:len(due)-1]; len(missed) > 0 {
		if err := s.recordMissed(j.name, missed, skipped, slot); err != nil {
			return time.Time{}, err
		}
	}
	err = s.runSlot(ctx, pub, j, slot)
	if err != nil && ctx.Err() != nil {
		return time.Time{}, err // shutting down: the slot stays due and runs at start
	}
	if err != nil && access.Retryable(err) {
		if n, aerr := s.attempts(j.name, slot); aerr == nil && n < jobAttempts {
			// A blip (Okta, Slack) must not cost a quarter's campaign: the
			// slot stays due and is tried again shortly.
			return s.clock.Now().Add(jobRetry), nil
		}
	}
	if err := s.SetCursor(jobCursor+j.name, slot.UTC().Format(time.RFC3339Nano)); err != nil {
		return time.Time{}, err
	}
	return sched.Next(slot), nil
}

func (s *Service) lastSlot(job string) (time.Time, error) {
	v, err := s.Cursor(jobCursor + job)
	if err != nil || v == "" {
		return time.Time{}, err
	}
	return time.Parse(time.RFC3339Nano, v)
}

// recordMissed writes a ledger entry per missed slot and one alert.
func (s *Service) recordMissed(job string, missed []time.Time, skipped int, ran time.Time) error {
	return s.updateLead(func(tx Tx) error {
		for i, t := range missed {
			run := JobRun{Job: job, Slot: t.UTC(), Outcome: RunMissed, Detail: "keycard was not running at the scheduled time; only the latest missed run (" + ts(ran) + ") was made up"}
			if i == 0 && skipped > 0 {
				run.Detail += fmt.Sprintf("; %d earlier missed runs are not listed one by one", skipped)
			}
			var prev JobRun
			if ok, err := tx.Doc(DocJobRun, run.ID(), &prev); err != nil {
				return err
			} else if ok && prev.Outcome != RunRunning {
				continue
			} else if ok {
				// Started, then keycard stopped before it finished.
				run.Started, run.Attempts = prev.Started, prev.Attempts
				run.Detail = "interrupted: keycard stopped while this run was in progress; " + run.Detail
			}
			if err := tx.PutDoc(DocJobRun, run.ID(), run); err != nil {
				return err
			}
		}
		_, err := tx.Append(access.Event{Type: access.EvAlert, Actor: access.ActorScheduler, Subject: access.ActorScheduler,
			Detail: encodeDetail(map[string]any{"kind": "job_missed", "job": job, "missed": len(missed) + skipped,
				"first": ts(missed[0]), "last": ts(missed[len(missed)-1]), "made_up": ts(ran),
				"message": fmt.Sprintf("The %s job missed %d scheduled runs while keycard was down; the latest (%s) runs now.", job, len(missed)+skipped, ts(ran))})})
		return err
	})
}

// runSlot runs one slot under the ledger: `running` before the work, `ok`
// or `failed` after, with the artefact's SHA-256. A slot whose ledger entry
// is already ok is not run again.
func (s *Service) runSlot(ctx context.Context, pub Publisher, j scheduledJob, slot time.Time) error {
	id := JobRun{Job: j.name, Slot: slot.UTC()}.ID()
	var prev JobRun
	var done bool
	if err := s.store.View(func(tx Tx) error {
		ok, err := tx.Doc(DocJobRun, id, &prev)
		done = ok && prev.Outcome == RunOK
		return err
	}); err != nil {
		return err
	}
	if done {
		return nil
	}
	start := s.clock.Now().UTC()
	attempt := prev.Attempts + 1
	if err := s.RecordJobRun(JobRun{Job: j.name, Slot: slot.UTC(), Started: start, Outcome: RunRunning, Attempts: attempt}); err != nil {
		return err
	}
	res, err := j.run(ctx, pub, slot)
	res.Job, res.Slot, res.Started, res.Finished, res.Attempts = j.name, slot.UTC(), start, s.clock.Now().UTC(), attempt
	res.Outcome = RunOK
	if err != nil {
		res.Outcome = RunFailed
		res.Detail = err.Error()
		s.log.Error("review job failed", "job", j.name, "slot", slot, "err", err)
		_ = s.Alert("job_failed", access.ActorScheduler, fmt.Sprintf("The %s run for %s failed: %v", j.name, ts(slot), err), nil)
	}
	if rerr := s.RecordJobRun(res); rerr != nil {
		return rerr
	}
	return err
}

// publish sends a report and audits that it was posted (report.posted).
func (s *Service) publish(ctx context.Context, pub Publisher, r Report) (string, error) {
	if pub == nil {
		return "", access.Errorf(access.CodeInternal, "no publisher: keycard cannot post to Slack")
	}
	if err := pub.Publish(ctx, r); err != nil {
		return "", err
	}
	sum := r.artefactHash()
	files := make([]string, len(r.Files))
	hashes := make(map[string]string, len(r.Files))
	for i, f := range r.Files {
		files[i] = f.Name
		h := sha256.Sum256(f.Content)
		hashes[f.Name] = hex.EncodeToString(h[:])
	}
	// Each file's own hash is chained too, so a chart beside a CSV (which
	// its manifest lists under attachments) can be checked against the
	// chain by `keycard export verify`, not only against its manifest.
	return sum, s.audit(access.Event{Type: access.EvReportPosted, Actor: access.ActorScheduler, Subject: access.ActorScheduler,
		Detail: encodeDetail(map[string]any{"job": r.Job, "key": r.Key, "channel": r.Channel, "slot": ts(r.Slot), "files": files, "file_sha256": hashes, "artefact_sha256": sum})})
}

// Retries of a failed scheduled run.
const (
	jobAttempts = 3
	jobRetry    = 10 * time.Minute
)

// attempts reads how many times a slot has been tried.
func (s *Service) attempts(job string, slot time.Time) (int, error) {
	var run JobRun
	err := s.store.View(func(tx Tx) error {
		_, err := tx.Doc(DocJobRun, JobRun{Job: job, Slot: slot.UTC()}.ID(), &run)
		return err
	})
	return run.Attempts, err
}

// RunJobNow runs one configured job for the slot `at` at once (an admin's
// "run now", tests), under the same ledger as the scheduler.
func (s *Service) RunJobNow(ctx context.Context, pub Publisher, job string, at time.Time) error {
	for _, j := range s.jobs() {
		if j.name == job {
			return s.runSlot(ctx, pub, j, at)
		}
	}
	return access.Errorf(access.CodeNotFound, "The policy schedules no %s job.", job)
}
