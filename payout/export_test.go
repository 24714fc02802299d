package payout

import "time"

// SearchQuery exposes the statement of a Search page to the index test.
var SearchQuery = searchQuery

// NewCursorForTest is a cursor at (at, id).
func NewCursorForTest(at time.Time, id string) string { return listCursor{at.UnixMicro(), id}.String() }
