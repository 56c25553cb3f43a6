// Package auditstream ships every audit event to a SIEM or a log shipper:
// one JSON object per line (Record, with stable field names), to stdout, an
// appended file, a generic HTTPS webhook signed with HMAC-SHA256, or Splunk's
// HTTP Event Collector.
//
// The audit log is the outbox, as for the Slack notifier: a durable cursor
// (Tx.Cursor "auditstream.seq") names the last event the receiver
// acknowledged, and moves only after a whole batch is acknowledged. So
// delivery is at least once: a crash or a receiver outage delays events and
// never skips or reorders them; a batch whose answer was lost (a timeout
// after the receiver stored it) is sent again, and the receiver dedupes on
// seq (or event_id). Each Record carries the chain's seq, prev_hash and hash
// so the SIEM side can check continuity without access to keycard.
//
// The stream runs in its own goroutine, reads the store in short read
// transactions and makes no network call inside one, so a slow receiver
// never holds up a Slack interaction.
package auditstream
