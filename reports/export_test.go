package reports

// SetExportPage sets the export's page size and returns the old one.
func SetExportPage(n int) int {
	old := exportPage
	exportPage = n
	return old
}
