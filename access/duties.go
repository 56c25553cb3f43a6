package access

// CodeConflictingDuties refuses a request that would complete one of the
// policy's separation-of-duties sets (`conflicts:`; SOC 2 CC6.3). It lives
// apart from the other refusal codes so their alignment stays untouched.
const CodeConflictingDuties Code = "conflicting_duties"
