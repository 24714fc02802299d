package dashboard

import (
	"testing"

	"github.com/disburse/disburse/hold"
	"github.com/disburse/disburse/inquiry"
)

// TestControlMessagesComplete: the keys the issue 14 templates build with
// printf (approval statuses, hold kinds) are all translated.
func TestControlMessagesComplete(t *testing.T) {
	keys := []string{"appr.st." + hold.ApprovalNone, "appr.kind." + hold.KindPayout, "appr.kind." + hold.KindBatch, "ctl.isPaused"}
	for _, st := range approvalStatuses {
		keys = append(keys, "appr.st."+st)
	}
	for _, k := range keys {
		if v, ok := messages[k]; !ok || v[0] == "" || v[1] == "" {
			t.Errorf("%q is missing from messages", k)
		}
	}
}

func TestReadAccounts(t *testing.T) {
	got, err := readAccounts("bank_code,account_number\n bca, 1234567890\n\novo,+62 812-3456-7890\n")
	want := []inquiry.Account{{BankCode: "bca", AccountNumber: "1234567890"}, {BankCode: "ovo", AccountNumber: "+62 812-3456-7890"}}
	if err != nil || len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("readAccounts = %v, %v; want %v", got, err, want)
	}
	for _, bad := range []string{"bca\n", "bca,1,2\n", "bca,\"12\n"} {
		if _, err := readAccounts(bad); err == nil {
			t.Errorf("readAccounts(%q) accepted a line that is not bank_code,account_number", bad)
		}
	}
}
