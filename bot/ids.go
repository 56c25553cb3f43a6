package bot

// Slash commands (manifest.yaml).
const (
	cmdAccess = "/access"
	cmdExport = "/export"
)

// Modal callback ids (view_submission routing).
const (
	cbRequest = "keycard_request" // the /access modal
	cbDeny    = "keycard_deny"    // the optional deny-reason modal
	cbExtend  = "keycard_extend"  // the Extend modal
	cbNotice  = "keycard_notice"  // informational modals (no submit)
)

// Action ids (block_actions routing). A button's value carries the request
// id (and step) as a lookup key only.
const (
	actApprove    = "keycard_approve"
	actDeny       = "keycard_deny"
	actCancel     = "keycard_cancel"
	actExtend     = "keycard_extend"
	actGiveUp     = "keycard_give_up"
	actRevoke     = "keycard_revoke" // admin's revoke on the App Home
	actRoleStat   = "keycard_role"   // static_select of roles in the request modal
	actRoleExt    = "keycard_role_search"
	actDuration   = "keycard_duration"
	actJustify    = "keycard_justification"
	actDenyInput  = "keycard_deny_reason"
	actOpenForm   = "keycard_open_request" // "Request access" button on the App Home
	actBreakGlass = "keycard_break_glass"  // the request modal's break-glass checkbox
	actStart      = "keycard_start"        // the request modal's "start now / later" radio (input only, no dispatch)
	actStartAt    = "keycard_start_at"     // the request modal's datetimepicker (input only)
)

// Block ids of input blocks: keys of response_action "errors", so they must
// name input blocks (slack-go issue #1013).
const (
	blkRole       = "role"
	blkDuration   = "duration" // suffixed with the policy name so a role change resets it
	blkJustify    = "justification"
	blkReason     = "reason"
	blkBreakGlass = "break_glass" // shown only for policies with break_glass: true
	blkStart      = "start"       // shown only for policies with schedule_ahead > 0
	blkStartAt    = "start_at"
)

// Event types of the Events API the bot handles.
const (
	evAppHomeOpened = "app_home_opened"
	evUserChange    = "user_change"
)

// Action and callback ids of the review surfaces.
const (
	actReviewKeep   = "keycard_review_keep"
	actReviewRevoke = "keycard_review_revoke"
	actReviewFlag   = "keycard_review_flag"
	actAskExtend    = "keycard_contractor_extend"
	actAskExpire    = "keycard_contractor_expire"
	actComment      = "keycard_review_comment"

	cbReviewKeep = "keycard_review_keep"       // the Keep-with-comment modal (privileged access)
	cbAskExtend  = "keycard_contractor_extend" // the contractor extension modal

	blkComment = "comment"
)

// MessageRef keys of review messages (MessageRef.RequestID is a lookup key).
const (
	refReviewItem = "review_item"
	refAsk        = "contractor_ask"
	refReport     = "report"
)

// Alert triage and staged policy approval in the security channel.
const (
	actAlertAck      = "keycard_alert_ack"
	actAlertResolve  = "keycard_alert_resolve"
	actPolicyApprove = "keycard_policy_approve"
	actOutcomeInput  = "keycard_outcome"
	cbResolve        = "keycard_resolve"
	blkOutcome       = "outcome"
)
