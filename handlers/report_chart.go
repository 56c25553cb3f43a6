package handlers

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"keycard/access"
	"keycard/handlers/chart"
)

// withChart draws a scheduled report's chart over [from, to) — privileged
// access hours per person and policy, and time from request to decision
// (median and p90) per policy — and posts it beside the CSV, with its
// SHA-256 in the manifest (issue 14: people would rather look than read).
// files are exportFiles' CSV and manifest.json; m is that manifest.
func (s *Service) withChart(files []ReportFile, m *Manifest, title string, from, to time.Time, privilegedOnly bool) ([]ReportFile, error) {
	var reqs []access.Request
	err := s.store.View(func(tx Tx) error {
		return tx.ForEachRequest(to, func(r *access.Request) error {
			if privilegedOnly && !r.Privileged {
				return nil
			}
			if end := r.LifecycleEnd(); !end.IsZero() && end.Before(from) {
				return nil
			}
			reqs = append(reqs, *r)
			return nil
		})
	})
	if err != nil {
		return files, err
	}
	d := chart.FromRequests(reqs, from, to)
	loc := s.location()
	d.Title = fmt.Sprintf("%s, %s to %s", title, from.In(loc).Format("2006-01-02"), to.In(loc).Format("2006-01-02"))
	png, err := chart.Report(d)
	if err != nil {
		return files, fmt.Errorf("chart for %s: %w", m.CSV.Name, err)
	}
	sum := sha256.Sum256(png)
	name := strings.TrimSuffix(m.CSV.Name, ".csv") + ".png"
	m.Attachments = append(m.Attachments, FileRef{Name: name, SHA256: hex.EncodeToString(sum[:]), Bytes: int64(len(png))})
	out := make([]ReportFile, 0, len(files)+1)
	for _, f := range files {
		if strings.HasSuffix(f.Name, ".manifest.json") && strings.TrimSuffix(f.Name, ".manifest.json")+".csv" == m.CSV.Name {
			f.Content = m.Encode()
		}
		out = append(out, f)
	}
	return append(out, ReportFile{Name: name, Content: png}), nil
}
