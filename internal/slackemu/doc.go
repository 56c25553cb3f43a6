// Package slackemu is an in-process emulator of the Slack Web API and the
// Socket Mode WebSocket protocol, faithful enough that the unmodified
// github.com/slack-go/slack v0.35.0 client (Web API and socketmode) runs
// against it end to end.
//
// keycard's bot tests and the offline `keycard demo` use it instead of a
// real workspace: a Server listens on one 127.0.0.1 port (slack-go refuses to
// send tokens to any host other than its API host, misc.go
// ensureURLMayReceiveToken), serves /api/<method>, the Socket Mode link, the
// file upload URL and response_url endpoints, and lets Go code act as the
// people in the workspace (run a slash command, click a button, submit a
// modal, open the Home tab) and inspect what the bot did (messages, modal
// stacks, Home views, uploaded files).
//
// The emulator enforces the platform limits a real workspace enforces, so a
// bot cannot pass its tests with payloads Slack would reject: Block Kit sizes
// (Slack's Block Kit reference: 50 blocks per message, 100 per view, 3000
// characters of section text, 24-character modal titles, ...), single-use
// trigger_ids that expire after 3 s, view hashes, the 3 s acknowledgement
// deadline of Socket Mode envelopes with redelivery of unacknowledged Events
// API envelopes (retry_attempt 1..3), and injected HTTP 429 rate limits.
//
// An app may hold several Socket Mode connections at once (every replica of
// keycard holds its own): each envelope goes to exactly one of them, round
// robin, and an unacknowledged Events API envelope is redelivered on another
// connection than the one that let it lapse. Deliveries, Connections and
// Posts (every chat.postMessage as posted) let a test say which socket got
// what and how often a person was messaged.
//
// State changes wake WaitFor, so tests wait for asynchronous bot work on a
// condition instead of sleeping.
package slackemu
