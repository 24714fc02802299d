package ledger

// SetAfterUnlockedRead makes f run inside every optimistic debit between
// its unlocked read of the balances and its lock, and returns the function
// that removes it.
func SetAfterUnlockedRead(f func()) (reset func()) {
	afterUnlockedRead = f
	return func() { afterUnlockedRead = nil }
}
