// Package csvw writes the evidence exports' CSV: RFC 4180 exactly as
// encoding/csv writes it (comma, LF line ends), with formula cells
// neutralised (SPEC "Access export"; OWASP "CSV Injection"), in one pass per
// cell straight into the output buffer (a SWAR scan finds the bytes that need
// quotes). It is a leaf: it imports the standard library only, so the
// handlers, the benchmarks and any later exporter share one writer.
package csvw
