package reports_test

import (
	"os"
	"testing"

	"github.com/disburse/disburse/internal/fixture"
)

func TestMain(m *testing.M) {
	code := m.Run()
	fixture.CloseReports()
	os.Exit(code)
}
