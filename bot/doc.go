// Package bot is keycard's Slack edge: the Socket Mode loop, the route table
// that maps slash commands, button clicks and modal submissions to one
// method each, the Web API calls that open modals, send DMs and upload CSV
// exports, the notifier that turns audit events into messages, and the pure
// Block Kit render functions behind every message, modal and App Home tab.
//
// Slack gives an app 3 seconds to acknowledge each Socket Mode envelope
// (https://api.slack.com/apis/connections/socket-implement), so the bot acks
// first and does identity-provider work afterwards on a bounded queue,
// showing results by updating messages and views. Every click is authorized
// again by package handlers against the store: a button value is a pointer,
// never a permission. Redelivered envelopes and double clicks have one
// effect (Core.FirstTime plus compare-and-swap decisions in handlers).
//
// bot depends on handlers (through the Core interface), policy and access,
// never on the store or the connectors.
package bot
