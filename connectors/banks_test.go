package connectors

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestDirectory(t *testing.T) {
	all := All()
	if !slices.IsSortedFunc(all, func(a, b Bank) int { return strings.Compare(a.Code, b.Code) }) {
		t.Fatal("All is not sorted by code")
	}
	want := []string{"bca", "bni", "bri", "bsi", "btn", "cimb", "dana", "danamon", "gopay", "linkaja", "mandiri", "ovo", "permata", "shopeepay"}
	var got []string
	for _, b := range all {
		got = append(got, b.Code)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("codes = %v, want %v", got, want)
	}
	all[0].Code = "changed"
	if b, _ := Lookup("bca"); b.Code != "bca" {
		t.Fatal("All returned the directory itself, not a copy")
	}

	prefixes := map[string][]string{}
	for _, b := range all {
		if b.MinAmount != 10_000 || b.MaxAmount <= b.MinAmount || b.AccountDigitsMin < 1 || b.AccountDigitsMax < b.AccountDigitsMin {
			t.Errorf("%s: bad limits %+v", b.Code, b)
		}
		switch b.Kind {
		case KindBank:
			if b.HostBank != "" || b.VAPrefix != "" {
				t.Errorf("%s: a bank has a host bank or VA prefix", b.Code)
			}
		case KindEWallet:
			host, ok := Lookup(b.HostBank)
			if !ok || host.Kind != KindBank {
				t.Errorf("%s: host bank %q is not a bank", b.Code, b.HostBank)
			}
			if !allDigits(b.VAPrefix) || len(b.VAPrefix) < 4 || len(b.VAPrefix) > 5 {
				t.Errorf("%s: VA prefix %q", b.Code, b.VAPrefix)
			}
			for _, p := range prefixes[b.HostBank] {
				if strings.HasPrefix(p, b.VAPrefix) || strings.HasPrefix(b.VAPrefix, p) {
					t.Errorf("%s: VA prefix %q overlaps %q at %s", b.Code, b.VAPrefix, p, b.HostBank)
				}
			}
			prefixes[b.HostBank] = append(prefixes[b.HostBank], b.VAPrefix)
		default:
			t.Errorf("%s: kind %q", b.Code, b.Kind)
		}
	}
	if b, _ := Lookup("bca"); b.MaxAmount != 250_000_000 {
		t.Errorf("bca max = %d", b.MaxAmount)
	}
	if _, ok := Lookup("BCA"); ok {
		t.Error("Lookup folded case")
	}
	if _, ok := Lookup("nope"); ok {
		t.Error("Lookup found an unknown code")
	}
}

func TestValidateAccount(t *testing.T) {
	tests := []struct {
		bank, acct string
		ok         bool
	}{
		{"bca", "1234567890", true},
		{"bca", "123456789", false},
		{"bca", "12345678901", false},
		{"bca", "12345 6789", false},
		{"bca", "", false},
		{"bca", "12345678٠0", false}, // Arabic-Indic zero is not an ASCII digit
		{"bri", "123456789012345", true},
		{"bri", "1234567890123456", false},
		{"mandiri", "1234567890123", true},
		{"ovo", "081234567890", true},
		{"ovo", "+6281234567890", true},
		{"ovo", "6281234567890", true},
		{"ovo", "0812-3456-7890", true},
		{"ovo", "0712345678", false},
		{"ovo", "1234567890", false},
		{"gopay", "08123", false},
	}
	for _, tt := range tests {
		b, ok := Lookup(tt.bank)
		if !ok {
			t.Fatalf("no bank %s", tt.bank)
		}
		err := b.ValidateAccount(tt.acct)
		if (err == nil) != tt.ok {
			t.Errorf("%s.ValidateAccount(%q) = %v, want ok=%v", tt.bank, tt.acct, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidAccount) {
			t.Errorf("%s.ValidateAccount(%q) = %v, does not wrap ErrInvalidAccount", tt.bank, tt.acct, err)
		}
	}
}

func TestValidateAmount(t *testing.T) {
	tests := []struct {
		bank   string
		amount int64
		want   error
	}{
		{"bca", 10_000, nil},
		{"bca", 9_999, ErrAmountTooSmall},
		{"bca", 0, ErrAmountTooSmall},
		{"bca", -5, ErrAmountTooSmall},
		{"bca", 250_000_000, nil},
		{"bca", 250_000_001, ErrAmountTooLarge},
		{"bni", 100_000_001, ErrAmountTooLarge},
		{"ovo", 20_000_000, nil},
		{"ovo", 20_000_001, ErrAmountTooLarge},
	}
	for _, tt := range tests {
		b, _ := Lookup(tt.bank)
		err := b.ValidateAmount(tt.amount)
		if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%s.ValidateAmount(%d) = %v, want %v", tt.bank, tt.amount, err, tt.want)
		}
	}
}

func TestNormalizePhone(t *testing.T) {
	tests := []struct {
		in, want string // want "" means an error
	}{
		{"081234567890", "081234567890"},
		{"0812345678", "0812345678"},       // 10 digits
		{"0812345678901", "0812345678901"}, // 13 digits
		{"081234567", ""},                  // 9 digits
		{"08123456789012", ""},             // 14 digits
		{"6281234567890", "081234567890"},
		{"+6281234567890", "081234567890"},
		{"+62 812-3456-7890", "081234567890"},
		{" 0812 3456 7890 ", "081234567890"},
		{"62081234567890", ""}, // 62 then a trunk 0
		{"+081234567890", ""},
		{"++6281234567890", ""},
		{"62+81234567890", ""},
		{"0212345678", ""}, // a Jakarta landline
		{"81234567890", ""},
		{"", ""},
		{"+62", ""},
		{"08123456789a", ""},
		{"(0812)34567890", ""},
	}
	for _, tt := range tests {
		got, err := NormalizePhone(tt.in)
		if tt.want == "" {
			if err == nil || !errors.Is(err, ErrInvalidAccount) {
				t.Errorf("NormalizePhone(%q) = %q, %v; want an ErrInvalidAccount", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("NormalizePhone(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestDestinationAccount(t *testing.T) {
	tests := []struct {
		bank, acct, want string
	}{
		{"bca", "1234567890", "1234567890"},
		{"ovo", "081234567890", "3935881234567890"},
		{"ovo", "+62 812 3456 7890", "3935881234567890"},
		{"gopay", "081234560000", "7000181234560000"},
		{"dana", "0812345678", "8810812345678"},
		{"ovo", "not a phone", ""},
	}
	for _, tt := range tests {
		b, _ := Lookup(tt.bank)
		if got := b.DestinationAccount(tt.acct); got != tt.want {
			t.Errorf("%s.DestinationAccount(%q) = %q, want %q", tt.bank, tt.acct, got, tt.want)
		}
	}
}

func TestLookupVA(t *testing.T) {
	for _, w := range All() {
		if !w.IsEWallet() {
			continue
		}
		va := w.DestinationAccount("081234567890")
		got, phone, ok := LookupVA(w.HostBank, va)
		if !ok || got.Code != w.Code || phone != "081234567890" {
			t.Errorf("LookupVA(%s, %s) = %s, %q, %v", w.HostBank, va, got.Code, phone, ok)
		}
		if _, _, ok := LookupVA("permata", va); ok && w.HostBank != "permata" {
			t.Errorf("LookupVA found %s's VA at the wrong bank", w.Code)
		}
	}
	// An ordinary ten-digit BCA account that starts like a VA prefix is not a VA.
	if _, _, ok := LookupVA("bca", "3935812345"); ok {
		t.Error("a ten-digit bca account was taken for a VA")
	}
}

var nationalPhone = regexp.MustCompile(`^08[0-9]{8,11}$`)

func FuzzNormalizePhone(f *testing.F) {
	for _, s := range []string{"081234567890", "+6281234567890", "6281234567890", "0812-3456-7890", "+62 812", "", "+", "62", "0", "08", "62081234567890", "٠812"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := NormalizePhone(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidAccount) {
				t.Fatalf("NormalizePhone(%q): error %v does not wrap ErrInvalidAccount", s, err)
			}
			return
		}
		if !nationalPhone.MatchString(p) {
			t.Fatalf("NormalizePhone(%q) = %q, not in 08... form", s, p)
		}
		for _, form := range []string{p, "62" + p[1:], "+62" + p[1:]} {
			if q, err := NormalizePhone(form); err != nil || q != p {
				t.Fatalf("NormalizePhone(%q) = %q, %v; want %q", form, q, err, p)
			}
		}
		w, _ := Lookup("ovo")
		va := w.DestinationAccount(s)
		if got, phone, ok := LookupVA(w.HostBank, va); !ok || got.Code != "ovo" || phone != p {
			t.Fatalf("LookupVA(%q) = %s, %q, %v; want ovo, %q", va, got.Code, phone, ok, p)
		}
	})
}
