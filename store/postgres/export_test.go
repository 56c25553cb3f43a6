package pgstore

// Retryable exposes the error classification to the tests.
var Retryable = retryable

// Raise makes the server fail the current statement with SQLSTATE code, as
// a real serialization failure or deadlock would.
func (tx *Tx) Raise(code string) error {
	_, err := tx.exec("DO $$ BEGIN RAISE EXCEPTION 'raised by a test' USING ERRCODE = '" + code + "'; END $$")
	return err
}
