package auditstream

import (
	"encoding/json"
	"fmt"
	"time"

	"keycard/access"
)

// Record is one audit event on the wire. The field names are a stable,
// documented interface (docs/operations.md "Audit stream"): add fields, never
// rename or remove them. Every field is always present (empty string when
// not applicable) so SIEM field extractions do not depend on the event type,
// except instance and keycard_version, present when configured.
type Record struct {
	Seq        uint64          `json:"seq"`         // position in the hash chain, 1, 2, 3, … without gaps
	EventID    string          `json:"event_id"`    // stable id of the event: dedupe on it (or on seq)
	OccurredAt string          `json:"occurred_at"` // RFC 3339 UTC with nanoseconds
	Type       string          `json:"type"`        // e.g. request.submitted, grant.active
	Actor      string          `json:"actor"`       // who acted: an email or a system actor
	UserEmail  string          `json:"user_email"`  // the person the event is about
	Policy     string          `json:"policy"`      // the access policy, when any
	RequestID  string          `json:"request_id"`  // the access request, when any
	Detail     json.RawMessage `json:"detail"`      // event-specific fields, always a JSON object
	PrevHash   string          `json:"prev_hash"`   // hash of event seq-1 (64 zeros for seq 1)
	Hash       string          `json:"hash"`        // hex SHA-256 over the event's canonical encoding
	Instance   string          `json:"instance,omitempty"`
	Version    string          `json:"keycard_version,omitempty"`
}

// NewRecord is e as a Record; instance and version label the sender.
func NewRecord(e access.Event, instance, version string) Record {
	detail := json.RawMessage(`{}`)
	if e.Detail != "" {
		if d := []byte(e.Detail); json.Valid(d) && d[0] == '{' {
			detail = d
		} else {
			// The log stores a compact JSON object; anything else is kept
			// verbatim rather than dropped, so the stream still carries it.
			detail, _ = json.Marshal(map[string]string{"raw": e.Detail})
		}
	}
	return Record{
		Seq: e.Seq, EventID: e.ID, OccurredAt: e.Time.UTC().Format(time.RFC3339Nano), Type: string(e.Type),
		Actor: e.Actor, UserEmail: e.Subject, Policy: e.Policy, RequestID: e.RequestID, Detail: detail,
		PrevHash: e.PrevHash, Hash: e.Hash, Instance: instance, Version: version,
	}
}

// hecEvent is Splunk HTTP Event Collector's envelope
// (docs.splunk.com "Format events for HTTP Event Collector"): time is epoch
// seconds with a fraction; HEC accepts several envelopes concatenated in one
// POST to /services/collector/event.
type hecEvent struct {
	Time       json.Number `json:"time"`
	Host       string      `json:"host,omitempty"`
	Source     string      `json:"source"`
	Sourcetype string      `json:"sourcetype"`
	Event      Record      `json:"event"`
}

// encode renders r as one line (with its newline) in format f.
func encode(f Format, r Record, at time.Time) ([]byte, error) {
	var v any = r
	if f == FormatSplunkHEC {
		ns := at.UnixNano()
		v = hecEvent{Time: json.Number(formatEpoch(ns)), Host: r.Instance, Source: "keycard", Sourcetype: "keycard:audit", Event: r}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// formatEpoch is Unix seconds with millisecond precision, the resolution
// Splunk indexes ("1700000000.123").
func formatEpoch(ns int64) string {
	sec, ms := ns/1e9, (ns%1e9)/1e6
	if ms < 0 {
		sec, ms = sec-1, ms+1000
	}
	return fmt.Sprintf("%d.%03d", sec, ms)
}
