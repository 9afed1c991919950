package postgres_test

import (
	"testing"

	"github.com/hermod-sms/hermod/store"
	"github.com/hermod-sms/hermod/store/storetest"
)

// TestConformance runs the shared store conformance suite, each test in a
// fresh schema.
func TestConformance(t *testing.T) {
	t.Parallel()
	testURL(t)
	storetest.Run(t, func(t *testing.T) store.Store { return newTestStore(t) })
}
