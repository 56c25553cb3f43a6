// Package server is keycard serve assembled in one importable place (after
// benbjohnson/wtf cmd/wtfd's Main): config -> policy -> store -> connectors
// -> handlers -> bot -> errgroup -> close. `keycard serve` and the demo boot
// it instead of wiring keycard by hand.
//
// Like package main it may import every other package; no product package
// imports it (layout_test.go). Deps carries what tests and the demo replace:
// the logger, the clock (whose After times every loop) and a ready callback.
package server
