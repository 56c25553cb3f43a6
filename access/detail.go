package access

import (
	"encoding/json"
	"time"
)

// Event details that someone reads back, one struct per event type (or
// per part of one that is read back). handlers writes them into
// Event.Detail; bot and handlers decode them with DecodeDetail.
//
// The bytes are evidence: events already in the chain hold them, the
// events export shows them, and their hash covers them. So a struct's
// fields keep the order of its JSON keys as the sorted map keycard wrote
// before these types existed, and a field is omitempty exactly when its
// key used to be left out. (An event about a request is re-encoded with
// sorted keys anyway when handlers adds the record digest to it, see
// handlers/chain.go; an event about no request is written as is.)

// DecodeDetail decodes e's detail into v, a pointer to its detail struct.
// An event without a detail leaves v as it is. A detail that is not a
// JSON object of v's shape is a CodeInvalid error naming the event.
func DecodeDetail(e Event, v any) error {
	if e.Detail == "" {
		return nil
	}
	if err := json.Unmarshal([]byte(e.Detail), v); err != nil {
		return Wrap(CodeInvalid, err, "the detail of audit event %d (%s) is not what keycard writes", e.Seq, e.Type)
	}
	return nil
}

// Submitted is the detail of request.submitted: the chain keeps what the
// access export shows of the request (its justification, who was asked).
type Submitted struct {
	Asked         [][]string `json:"asked"` // each step's candidates' emails
	Duration      string     `json:"duration"`
	Extends       string     `json:"extends,omitempty"` // the grant an extension extends
	Justification string     `json:"justification"`
	Steps         []string   `json:"steps"` // each step's rule and number of candidates
	// StartAt is the scheduled start asked for (RFC 3339, UTC); absent: as
	// soon as approved.
	StartAt string `json:"start_at,omitempty"`
	// BreakGlassChain is set for a break-glass request.
	*BreakGlassChain
}

// BreakGlassChain is the part of a break-glass request's request.submitted
// detail that names the normal approval chain: its approvers are told at
// once.
type BreakGlassChain struct {
	BreakGlass  bool   `json:"break_glass"`
	NormalChain []Step `json:"normal_chain"`
}

// Alert is the detail of an alert and a provision.alert event: what kind
// of alert, and in words what happened. identity.mismatch details carry a
// message beside the ids.
type Alert struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// GrantFailed is the detail of grant.failed: provisioning gave up.
type GrantFailed struct {
	Attempts int    `json:"attempts"`
	Error    string `json:"error"`
}

// AlertOf decodes what the security channel is shown of an alert-like
// event: its kind and its message (for grant.failed, the
// error provisioning gave up on).
func AlertOf(e Event) (Alert, error) {
	if e.Type == EvGrantFailed {
		var f GrantFailed
		err := DecodeDetail(e, &f)
		return Alert{Message: f.Error}, err
	}
	var a Alert
	err := DecodeDetail(e, &a)
	return a, err
}

// CampaignItemRef is the part of a campaign item's events
// (campaign.item.assigned, .decided, .timed_out) that the bot reads back:
// which item of which campaign.
type CampaignItemRef struct {
	Campaign string `json:"campaign"`
	Item     string `json:"item"`
}

// CampaignReminded is the detail of campaign.reminded: how many items each
// reviewer still has to decide, by the campaign's due date.
type CampaignReminded struct {
	Campaign string         `json:"campaign"`
	DueAt    string         `json:"due_at"` // RFC 3339
	Waiting  map[string]int `json:"waiting"`
}

// ExportCreated is the detail of an export.created event: what keycard
// generated, as the audit chain remembers it. It is the authority a
// manifest is held to: a manifest is a file anyone can edit, the chain is
// not.
//
// Events written before issue 10 carry only report, parameters, rows,
// csv_sha256, head_seq and invocation.
type ExportCreated struct {
	Report        string           `json:"report"`
	Parameters    ExportParameters `json:"parameters"`
	InclusionRule string           `json:"inclusion_rule,omitempty"`
	Rows          int              `json:"rows"`
	Counts        map[string]int   `json:"counts,omitempty"`
	CountsColumn  string           `json:"counts_column,omitempty"`
	CSVSHA256     string           `json:"csv_sha256"`
	HeadSeq       uint64           `json:"head_seq"`
	Invocation    string           `json:"invocation"`
	GeneratedBy   string           `json:"generated_by,omitempty"`
	GeneratedAt   *time.Time       `json:"generated_at,omitempty"`
	// What the manifest's audit section states besides the head (issue 10
	// review): the rows' seq range and the period's seq window (events
	// export), and how the rows' records compared with the chain (access
	// export). Events written before carry none of them.
	FirstSeq uint64       `json:"first_seq,omitempty"`
	LastSeq  uint64       `json:"last_seq,omitempty"`
	Window   *SeqWindow   `json:"window,omitempty"`
	Records  *RecordCheck `json:"records,omitempty"`
}

// SeqWindow is the range of audit seqs an events export walked: every event
// from FirstSeq to LastSeq, each following the previous one (Gapless), is
// in the period; the rows are those of them that pass the policy filter.
type SeqWindow struct {
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	Gapless  bool   `json:"gapless"`
}

// RecordCheck counts the access export's rows by how their request record
// was held to the audit chain: Checked rows equal the record the last
// chained event about the request attested; Unattested rows' requests have
// no event carrying a record digest (written by a keycard before issue 10),
// so only the chain's own events vouch for them. A record that differs from
// its attestation is never counted: the export fails, naming the request.
type RecordCheck struct {
	Checked    int `json:"checked"`
	Unattested int `json:"unattested"`
}

// ExportParameters are an export's inputs, as its manifest states them and
// its export.created event records them.
type ExportParameters struct {
	Policy   string `json:"policy,omitempty"`
	From     string `json:"from,omitempty"` // RFC 3339, inclusive
	To       string `json:"to,omitempty"`   // RFC 3339, exclusive
	AsOf     string `json:"as_of,omitempty"`
	Campaign string `json:"campaign,omitempty"`
	Timezone string `json:"timezone"`
}
