package bot

import (
	"context"
	"testing"
)

// The socket loop must never block on a full work queue (security review
// M4): tryEnqueue says no at once instead.
func TestTryEnqueueNeverBlocks(t *testing.T) {
	b := &Bot{jobs: make(chan job, 1)}
	if !b.tryEnqueue("first", func(context.Context) {}) {
		t.Fatal("an empty queue refused work")
	}
	if b.tryEnqueue("second", func(context.Context) {}) {
		t.Fatal("a full queue took more work")
	}
}
