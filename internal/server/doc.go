// Package server is keycard serve assembled in one importable place (after
// benbjohnson/wtf cmd/wtfd's Main): config -> policy -> store -> connectors
// -> handlers -> bot -> errgroup -> close. `keycard serve` and the demo boot
// it instead of wiring keycard by hand.
//
// Like package main it may import every other package; no product package
// imports it (layout_test.go). Deps carries what tests and the demo replace:
// the logger, the clock (whose After times every loop), a ready callback,
// and the tests' knobs, whose zero values are serve's behaviour: Manual
// (only the bot runs; the test drives the use cases), a Core wrapper for
// fault injection, the bot's tuning and bbolt's NoSync. The bot e2e tests,
// internal/chaos and internal/bench boot keycard through it.
package server
