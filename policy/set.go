package policy

import (
	"strings"
	"time"

	"keycard/access"
)

// Defaults of optional keys (SPEC "Policy file (YAML)" and "Lifecycle").
const (
	DefaultExpiryWarning    = 15 * time.Minute    // SPEC: "Shortly before the end (default 15 minutes)"
	DefaultOffboardingSLA   = 24 * time.Hour      // the removal SLA auditors commonly test against (notes/soc2.md)
	DefaultOffboardingCheck = 5 * time.Minute     // holder status sweep interval
	DefaultRequestTTL       = 24 * time.Hour      // SPEC: request_ttl default 24h
	DefaultRemindAfter      = 1 * time.Hour       // SPEC: remind_after default 1h
	DefaultScheduleAhead    = 14 * 24 * time.Hour // SPEC: schedule_ahead default 14d
	// MaxScheduleAhead bounds schedule_ahead: an approval given a year
	// before its access starts no longer says much about the need.
	MaxScheduleAhead = 365 * 24 * time.Hour
	// StartTolerance is how far in the past a requested start may be and
	// still mean "now": the time it took to fill in the form.
	StartTolerance          = 5 * time.Minute
	DefaultCertificationDue = 14 * 24 * time.Hour
	DefaultManagerAttribute = "managerId" // Okta's base profile attribute for the manager's id
	// MaxBreakGlass is the longest duration.max a break_glass policy may have:
	// SPEC asks for a "short duration.max" on self-approved access.
	MaxBreakGlass = 4 * time.Hour
)

// Connector types.
const (
	ConnectorOkta      = "okta"
	ConnectorEntra     = "entra"
	ConnectorJumpCloud = "jumpcloud"
	ConnectorStatic    = "static"
)

// Certification on_timeout outcomes (what happens to an unanswered review
// item, like Okta IGA's remediationSetting.noResponse).
const (
	OnTimeoutRevoke      = "revoke"
	OnTimeoutEscalate    = "escalate"
	OnTimeoutKeepAndFlag = "keep-and-flag"
)

// Set is one loaded, valid policy file.
type Set struct {
	Path, Hash string // file path; Hash = hex SHA-256 of the file bytes (the "policy version")
	// Raw is the file's bytes: keycard keeps each version's text so the
	// policy in force can be re-read when the file on disk is an unapproved
	// change (change_approval).
	Raw        []byte
	Version    int
	Directory  string // connector name that is the source of truth for people
	Connectors map[string]*Connector
	Profiles   map[string]*Profile
	Policies   []*Policy // file order
	Auditors   GroupRef  // may run /export
	Admins     GroupRef  // may revoke any grant, run reviews now
	Alerts     Alerts    // optional security channel
	Reviews    Reviews
	// ExpiryWarning is how long before a grant ends the holder is offered Extend.
	ExpiryWarning time.Duration
	// OffboardingSLA is how soon after an IdP deactivation every grant must be gone.
	OffboardingSLA time.Duration
	// OffboardingCheck is how often holders' IdP status is swept.
	OffboardingCheck time.Duration
	// ChangeApproval asks that a new policy version be approved by a second
	// admin before it takes effect (CC8.1; a later feature).
	ChangeApproval bool
	// Conflicts are the separation-of-duties sets (conflicts.go);
	// ConflictsMode is ConflictsRefuse (default) or ConflictsApprove.
	Conflicts     []Conflict
	ConflictsMode string
}

// Connector is one identity provider keycard may read and change.
type Connector struct {
	Name, Type string
	// Scope holds the group globs (path.Match syntax) this connector may ever
	// change: the ceiling that holds even when a policy asks for more.
	Scope            []string
	ManagerAttribute string        // profile attribute holding the manager's id, login or email
	Users            []StaticUser  // static only
	Groups           []StaticGroup // static only
	Line             int
}

// InScope reports whether group matches one of the connector's scope globs.
// A connector without scope may change nothing.
func (c *Connector) InScope(group string) bool {
	if c == nil || group == "" {
		return false
	}
	return access.InScope(c.Scope, group)
}

// StaticUser is a person of a static (in-file) directory.
type StaticUser struct {
	Email, Name, Manager string // Manager: the manager's email
	Status               access.UserStatus
	Attributes           map[string]string
}

// StaticGroup is a group of a static directory.
type StaticGroup struct {
	Name    string
	Members []string // emails
}

// Profile is a named eligibility condition over directory attributes.
type Profile struct {
	Name  string
	Where map[string][]string // attribute -> accepted values; empty = everyone
}

// Policy says who may ask for one application role, who approves, and for how long.
type Policy struct {
	Name, App, Role, Group, Connector string // Connector defaults to Set.Directory
	Privileged                        bool
	Eligible                          []string // profile names
	Auto                              bool     // approval: auto
	Approval                          []Rule   // steps in order (empty iff Auto)
	DefaultDuration, MaxDuration      time.Duration
	// JustificationRequired defaults to true when `justification` is absent:
	// an auditor sampling grants expects a reason on each.
	JustificationRequired bool
	BreakGlass            bool
	RequestTTL            time.Duration // default 24h
	RemindAfter           time.Duration // default 1h
	EscalateAfter         time.Duration // 0 = off
	EscalateTo            []Rule
	// ScheduleAhead is how far ahead a request may ask its access to
	// start (scheduled access); default 14d. 0 (schedule_ahead: 0s) means
	// every request starts when it is approved.
	ScheduleAhead time.Duration
	// ExtendMaxTotal is the longest a grant may last counting its extensions;
	// 0 means no total limit (each extension is still at most MaxDuration).
	ExtendMaxTotal time.Duration
	// ApprovalMFA makes every step's Approve count only once the approver
	// passes an MFA challenge at the IdP (approval_mfa: true); a single step
	// asks for it with Rule.MFA.
	ApprovalMFA bool
	Line        int // line of the policy in the file
}

// ConnectorName is the connector that provisions this policy's group.
func (p *Policy) ConnectorName() string { return p.Connector }

// RuleKind is the form of an approval rule.
type RuleKind string

// Approval rule forms (SPEC: `- manager`, `- group: x`, `- user: e`, `- users: [a, b]`).
const (
	RuleManager RuleKind = "manager"
	RuleGroup   RuleKind = "group"
	RuleUser    RuleKind = "user"
	RuleUsers   RuleKind = "users"
)

// Rule is one approval step (or an escalation / reviewer rule).
type Rule struct {
	Kind  RuleKind
	Group string
	Users []string // emails
	MFA   bool     // approval_mfa: true on this step (approval rules only)
}

// String is the rule as stamped on access.Step.Rule: "manager",
// "group:security-team", "user:carol@example.com", "users:a@x;b@x".
func (r Rule) String() string {
	switch r.Kind {
	case RuleManager:
		return "manager"
	case RuleGroup:
		return "group:" + r.Group
	case RuleUser:
		if len(r.Users) > 0 {
			return "user:" + r.Users[0]
		}
		return "user:"
	case RuleUsers:
		s := "users:"
		for i, u := range r.Users {
			if i > 0 {
				s += ";"
			}
			s += u
		}
		return s
	}
	return string(r.Kind)
}

// RuleOf parses a rule as String writes it ("manager", "group:g",
// "user:e", "users:a;b"); false for anything else.
func RuleOf(s string) (Rule, bool) {
	kind, arg, _ := strings.Cut(s, ":")
	switch RuleKind(kind) {
	case RuleManager:
		return Rule{Kind: RuleManager}, arg == "" && !strings.Contains(s, ":")
	case RuleGroup:
		return Rule{Kind: RuleGroup, Group: arg}, arg != ""
	case RuleUser:
		return Rule{Kind: RuleUser, Users: []string{arg}}, arg != ""
	case RuleUsers:
		users := strings.Split(arg, ";")
		return Rule{Kind: RuleUsers, Users: users}, arg != ""
	}
	return Rule{}, false
}

// GroupRef names a directory group.
type GroupRef struct{ Group string }

// Alerts is where failures, break-glass use and identity mismatches go.
type Alerts struct{ Channel string } // empty: DM each admin

// Reviews holds the scheduled review jobs; a nil job is not scheduled.
type Reviews struct {
	Timezone          *time.Location // default UTC
	TimezoneName      string
	AdminAccessReport *ReportJob
	ContractorExpiry  *ContractorJob
	CompliancePackage *ReportJob
	Certification     *CertificationJob
}

// ReportJob posts a report to a channel on a schedule.
type ReportJob struct {
	Schedule string // robfig/cron standard spec, validated with cron.ParseStandard
	Channel  string
}

// ContractorJob asks managers to confirm or extend contractors' access that
// ends within Within.
type ContractorJob struct {
	Schedule    string
	Within      time.Duration
	Contractors map[string][]string // a where-condition, as in profiles
}

// CertificationJob runs an access-review campaign.
type CertificationJob struct {
	Schedule   string
	Privileged bool     // policies: {privileged: true}
	Names      []string // policies: {names: [...]}
	Reviewer   Rule     // manager | {user: x} | {group: g}
	Channel    string   // optional summary channel
	Due        time.Duration
	OnTimeout  string // revoke | escalate | keep-and-flag
}

// Covers reports whether the campaign reviews holders of p.
func (c *CertificationJob) Covers(p *Policy) bool {
	if c == nil || p == nil {
		return false
	}
	if c.Privileged && p.Privileged {
		return true
	}
	for _, n := range c.Names {
		if n == p.Name {
			return true
		}
	}
	return false
}
