package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/disburse/disburse/connectors"
	"github.com/disburse/disburse/connectors/banksim"
)

// A bank-profiles file sets the guard's profiles and sends a bank with its
// own base_url (and the e-wallets it hosts) there, the others to --bank-url.
func TestBankConfigAppliesProfilesFile(t *testing.T) {
	gateway, own := banksim.New(banksim.Options{}), banksim.New(banksim.Options{})
	gwSrv, ownSrv := httptest.NewServer(gateway.Handler()), httptest.NewServer(own.Handler())
	defer gwSrv.Close()
	defer ownSrv.Close()
	path := filepath.Join(t.TempDir(), "banks.yaml")
	file := fmt.Sprintf("defaults: {timeout: 3s, max_in_flight: 7, windows: []}\nbanks:\n  bca: {base_url: %q, max_in_flight: 9}\n", ownSrv.URL)
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	guard, profiles, err := bankConfig{url: gwSrv.URL, profilesPath: path, timeout: 2 * time.Second}.newBank()
	if err != nil {
		t.Fatal(err)
	}
	if p := guard.Profile("bca"); p.MaxInFlight != 9 || p.Timeout != 2*time.Second {
		t.Errorf("bca profile %+v: want 9 in flight and --bank-timeout's 2s", p)
	}
	if p := profiles["bni"]; p.MaxInFlight != 7 || len(p.Windows) != 0 {
		t.Errorf("bni profile %+v", p)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		code, acct string
		want       *banksim.Server
	}{{"bca", "1234567895", own}, {"ovo", "081234567895", own}, {"bni", "1234567895", gateway}} {
		ref := "ref-" + tc.code
		// An e-wallet's account is the phone; the client builds the VA.
		if _, err := guard.Transfer(ctx, connectors.TransferRequest{Reference: ref, BankCode: tc.code, AccountNumber: tc.acct, Amount: 50_000, Currency: "IDR"}); err != nil {
			t.Fatalf("%s: %v", tc.code, err)
		}
		if tc.want.Received(ref) != 1 {
			t.Errorf("%s's transfer did not reach its bank's base URL", tc.code)
		}
	}

	// A bad file stops the role before it starts.
	if err := os.WriteFile(path, []byte("banks:\n  bca: {timeout: soon}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := (bankConfig{url: gwSrv.URL, profilesPath: path}).newBank(); err == nil || !strings.Contains(err.Error(), "banks.bca: timeout") {
		t.Errorf("bad file: %v", err)
	}
}
