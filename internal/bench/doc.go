// Package bench holds keycard's performance benchmarks: the budgets of the
// enterprise-scale design (a 20,000-person company, 1,000 policies, 100,000
// active grants, 1,000,000 audit events on a 2-core machine) measured with
// go test -bench, each against a baseline measured inside the same benchmark
// run so that a noisy machine moves both figures and not the verdict.
//
// The package has no code outside its tests: fixtures are generated in code
// (never committed), written straight through the store API in large NoSync
// transactions and cached once per test process in a temporary directory.
// KEYCARD_BENCH_SCALE=small shrinks every fixture for a quick run. No test
// here asserts on time: the budgets are reported (b.ReportMetric and, when
// KEYCARD_BENCH_REPORT names a file, one tab-separated verdict line per
// benchmark) and read by a person or by scripts/bench, which prints the table
// of BENCHMARKS.md.
package bench
