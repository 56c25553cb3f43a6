package pgstore

// Retryable exposes the error classification to the tests.
var Retryable = retryable

// Raise makes the server fail the current statement with SQLSTATE code, as
// a real serialization failure or deadlock would.
func (tx *Tx) Raise(code string) error {
	_, err := tx.exec("DO $$ BEGIN RAISE EXCEPTION 'raised by a test' USING ERRCODE = '" + code + "'; END $$")
	return err
}

// IndexedReads are the hot reads with example arguments, for plan checks.
var IndexedReads = []struct {
	Name string
	SQL  string
	Args []any
}{
	{"Due", sqlDue, []any{int64(0), int64(100)}},
	{"NextDue", sqlNextDue, nil},
	{"RequestsOfUser", sqlOfUser, []any{"u7@x"}},
	{"Holders", sqlHolders, []any{"okta", "app-p7"}},
	{"WaitingOn", sqlWaitingOn, []any{"carol7@x"}},
	{"InState", sqlInState, []any{[]string{"provisioning"}}},
}

// RequestPage is ForEachRequest's page query.
const RequestPage = sqlRequestPage
