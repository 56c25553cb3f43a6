package access

// Audit event types of the review jobs and access-review campaigns
// (additive: the lifecycle's types live in event.go).
const (
	EvReportPosted EventType = "report.posted" // a scheduled report reached its channel; detail: job, slot, files, sha256

	EvCampaignOpened         EventType = "campaign.opened"          // population frozen; detail: campaign, snapshot_at, population_sha256, items
	EvCampaignItemAssigned   EventType = "campaign.item.assigned"   // an item went to its reviewer(s); detail: item, reviewers, reviewer_is_subject, reassigned_from
	EvCampaignItemDecided    EventType = "campaign.item.decided"    // keep | revoke | flag by a reviewer; detail: item, campaign, decision, comment
	EvCampaignItemTimedOut   EventType = "campaign.item.timed_out"  // unanswered at the due date; detail: item, outcome (revoked, escalated, kept_and_flagged)
	EvCampaignItemRemediated EventType = "campaign.item.remediated" // the IdP confirmed a Revoke; detail: item, grant
	EvCampaignReminded       EventType = "campaign.reminded"        // daily reminder of unreviewed items; detail: campaign, reviewers
	EvCampaignClosed         EventType = "campaign.closed"          // due date reached or every item decided; detail: counts

	EvContractorAsked     EventType = "review.contractor.asked"      // a contractor's expiring grant went to their manager
	EvContractorExtended  EventType = "review.contractor.extended"   // the manager extended it (an approved extension request)
	EvContractorLetExpire EventType = "review.contractor.let_expire" // the manager let it expire
	// EvContractorExtensionRequested: the manager asked to extend a
	// privileged grant; the extension request goes through the policy's
	// approval chain, and its own events record the outcome.
	EvContractorExtensionRequested EventType = "review.contractor.extension_requested"
)
