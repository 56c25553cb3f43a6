// Package chart draws the pictures the weekly admin-access report and the
// monthly compliance package post beside their CSVs: privileged access hours
// per person and policy over the period, and time from request to decision
// (median and p90) per policy. It is pure: data in, PNG bytes out, with
// gonum.org/v1/plot and its embedded Liberation fonts at fixed sizes, so
// the same data always gives the same bytes (the golden test pins them).
//
// FromRequests turns the stored requests of a period into the inputs;
// Report draws both panels in one PNG.
package chart
