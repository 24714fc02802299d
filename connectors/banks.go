package connectors

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Kinds of payout destination.
const (
	KindBank    = "bank"
	KindEWallet = "ewallet"
)

var (
	// ErrUnknownBank: the bank code is not in the directory.
	ErrUnknownBank = errors.New("connectors: unknown bank code")
	// ErrInvalidAccount: the account number (or, for an e-wallet, the phone
	// number) has the wrong shape for the bank.
	ErrInvalidAccount = errors.New("connectors: invalid account number")
	// ErrAmountTooSmall and ErrAmountTooLarge: the amount is outside the
	// bank's limits (failure code AMOUNT_LIMIT_EXCEEDED).
	ErrAmountTooSmall = errors.New("connectors: amount below the bank's minimum")
	ErrAmountTooLarge = errors.New("connectors: amount above the bank's maximum")
)

// Bank is one payout destination: a bank, or an e-wallet paid through a
// virtual account (VA) at its host bank.
type Bank struct {
	Code string // lower case: "bca", "ovo"
	Name string
	Kind string // KindBank or KindEWallet

	// Amount limits per payout, in whole rupiah (IDR has no minor unit in
	// practice, so the minor-unit amount and the rupiah amount are the same).
	MinAmount, MaxAmount int64

	// Length range of a valid account number. For an e-wallet it is the
	// length of the phone number in national form (08...).
	AccountDigitsMin, AccountDigitsMax int

	// E-wallets only: the bank that receives the payout, and the prefix of
	// the virtual account number built from the customer's phone number.
	HostBank string
	VAPrefix string
}

// directory is every supported destination. Account lengths are kept a
// little looser than the real banks' so that a generic ten-digit sandbox
// account number works at every bank.
var directory = []Bank{
	{Code: "bca", Name: "Bank Central Asia", Kind: KindBank, MinAmount: 10_000, MaxAmount: 250_000_000, AccountDigitsMin: 10, AccountDigitsMax: 10},
	{Code: "bni", Name: "Bank Negara Indonesia", Kind: KindBank, MinAmount: 10_000, MaxAmount: 100_000_000, AccountDigitsMin: 10, AccountDigitsMax: 10},
	{Code: "bri", Name: "Bank Rakyat Indonesia", Kind: KindBank, MinAmount: 10_000, MaxAmount: 100_000_000, AccountDigitsMin: 10, AccountDigitsMax: 15},
	{Code: "mandiri", Name: "Bank Mandiri", Kind: KindBank, MinAmount: 10_000, MaxAmount: 100_000_000, AccountDigitsMin: 10, AccountDigitsMax: 13},
	{Code: "cimb", Name: "CIMB Niaga", Kind: KindBank, MinAmount: 10_000, MaxAmount: 100_000_000, AccountDigitsMin: 10, AccountDigitsMax: 14},
	{Code: "permata", Name: "Bank Permata", Kind: KindBank, MinAmount: 10_000, MaxAmount: 100_000_000, AccountDigitsMin: 10, AccountDigitsMax: 16},
	{Code: "bsi", Name: "Bank Syariah Indonesia", Kind: KindBank, MinAmount: 10_000, MaxAmount: 100_000_000, AccountDigitsMin: 10, AccountDigitsMax: 10},
	{Code: "btn", Name: "Bank Tabungan Negara", Kind: KindBank, MinAmount: 10_000, MaxAmount: 100_000_000, AccountDigitsMin: 10, AccountDigitsMax: 16},
	{Code: "danamon", Name: "Bank Danamon", Kind: KindBank, MinAmount: 10_000, MaxAmount: 100_000_000, AccountDigitsMin: 10, AccountDigitsMax: 13},

	{Code: "ovo", Name: "OVO", Kind: KindEWallet, MinAmount: 10_000, MaxAmount: 20_000_000, AccountDigitsMin: 10, AccountDigitsMax: 13, HostBank: "bca", VAPrefix: "39358"},
	{Code: "gopay", Name: "GoPay", Kind: KindEWallet, MinAmount: 10_000, MaxAmount: 20_000_000, AccountDigitsMin: 10, AccountDigitsMax: 13, HostBank: "bca", VAPrefix: "70001"},
	{Code: "dana", Name: "DANA", Kind: KindEWallet, MinAmount: 10_000, MaxAmount: 20_000_000, AccountDigitsMin: 10, AccountDigitsMax: 13, HostBank: "bni", VAPrefix: "8810"},
	{Code: "shopeepay", Name: "ShopeePay", Kind: KindEWallet, MinAmount: 10_000, MaxAmount: 20_000_000, AccountDigitsMin: 10, AccountDigitsMax: 13, HostBank: "mandiri", VAPrefix: "89302"},
	{Code: "linkaja", Name: "LinkAja", Kind: KindEWallet, MinAmount: 10_000, MaxAmount: 20_000_000, AccountDigitsMin: 10, AccountDigitsMax: 13, HostBank: "bri", VAPrefix: "88810"},
}

var byCode = func() map[string]Bank {
	m := make(map[string]Bank, len(directory))
	for _, b := range directory {
		m[b.Code] = b
	}
	return m
}()

// Lookup finds a bank or e-wallet by its code. Codes are lower case; Lookup
// does not fold case.
func Lookup(code string) (Bank, bool) {
	b, ok := byCode[code]
	return b, ok
}

// All returns every bank and e-wallet, sorted by code. The slice is a copy.
func All() []Bank {
	out := slices.Clone(directory)
	slices.SortFunc(out, func(a, b Bank) int { return strings.Compare(a.Code, b.Code) })
	return out
}

// IsEWallet reports whether b is paid through a virtual account.
func (b Bank) IsEWallet() bool { return b.Kind == KindEWallet }

// ValidateAccount checks the shape of an account number: digits only, with a
// length in the bank's range. For an e-wallet the account is the customer's
// phone number in any form NormalizePhone accepts. Errors wrap
// ErrInvalidAccount.
func (b Bank) ValidateAccount(s string) error {
	if b.IsEWallet() {
		_, err := NormalizePhone(s)
		return err
	}
	if !allDigits(s) {
		return fmt.Errorf("%w: %s account number must be digits only", ErrInvalidAccount, b.Code)
	}
	if n := len(s); n < b.AccountDigitsMin || n > b.AccountDigitsMax {
		if b.AccountDigitsMin == b.AccountDigitsMax {
			return fmt.Errorf("%w: %s account number must have %d digits, not %d", ErrInvalidAccount, b.Code, b.AccountDigitsMin, n)
		}
		return fmt.Errorf("%w: %s account number must have %d to %d digits, not %d", ErrInvalidAccount, b.Code, b.AccountDigitsMin, b.AccountDigitsMax, n)
	}
	return nil
}

// ValidateAmount checks amount against the bank's per-payout limits. Errors
// wrap ErrAmountTooSmall or ErrAmountTooLarge.
func (b Bank) ValidateAmount(amount int64) error {
	switch {
	case amount < b.MinAmount:
		return fmt.Errorf("%w: %s minimum is %d, got %d", ErrAmountTooSmall, b.Code, b.MinAmount, amount)
	case amount > b.MaxAmount:
		return fmt.Errorf("%w: %s maximum is %d, got %d", ErrAmountTooLarge, b.Code, b.MaxAmount, amount)
	}
	return nil
}

// DestinationAccount is the account number the bank is asked to credit. For
// a bank it is acct unchanged. For an e-wallet it is the virtual account at
// HostBank: VAPrefix followed by the phone number in national form without
// its leading 0 (ovo, 0812-3456-7890 -> "39358" + "81234567890"). The last
// digits of the phone number stay the last digits of the VA, so the sandbox
// magic suffixes work for e-wallets too.
//
// acct must pass ValidateAccount; for an e-wallet phone number that does not
// normalize, DestinationAccount returns "".
func (b Bank) DestinationAccount(acct string) string {
	if !b.IsEWallet() {
		return acct
	}
	p, err := NormalizePhone(acct)
	if err != nil {
		return ""
	}
	return b.VAPrefix + p[1:]
}

// LookupVA finds the e-wallet whose virtual account at hostBank account is,
// and the customer's phone number in 08... form. It is the inverse of
// DestinationAccount, for the receiving side.
func LookupVA(hostBank, account string) (wallet Bank, phone string, ok bool) {
	for _, w := range directory {
		if !w.IsEWallet() || w.HostBank != hostBank || !strings.HasPrefix(account, w.VAPrefix) {
			continue
		}
		rest := account[len(w.VAPrefix):]
		if !strings.HasPrefix(rest, "8") {
			continue
		}
		if p, err := NormalizePhone("0" + rest); err == nil {
			return w, p, true
		}
	}
	return Bank{}, "", false
}

// Length of an Indonesian mobile number in national form (08...), digits.
const (
	phoneDigitsMin = 10
	phoneDigitsMax = 13
)

// NormalizePhone turns an Indonesian mobile number into its national form
// "08...". It accepts "08...", "628..." and "+628...", with spaces and
// hyphens as separators; the national form must have 10 to 13 digits.
// Errors wrap ErrInvalidAccount.
func NormalizePhone(s string) (string, error) {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == ' ' || c == '-':
		case c == '+' && b.Len() == 0:
			b.WriteByte(c)
		case c >= '0' && c <= '9':
			b.WriteByte(c)
		default:
			return "", fmt.Errorf("%w: phone number has a character that is not a digit", ErrInvalidAccount)
		}
	}
	d := b.String()
	var nsn string // national significant number, starting with 8
	switch {
	case strings.HasPrefix(d, "+62"):
		nsn = d[3:]
	case strings.HasPrefix(d, "62"):
		nsn = d[2:]
	case strings.HasPrefix(d, "0"):
		nsn = d[1:]
	default:
		return "", fmt.Errorf("%w: phone number must start with 08, 628 or +628", ErrInvalidAccount)
	}
	if !strings.HasPrefix(nsn, "8") || !allDigits(nsn) {
		return "", fmt.Errorf("%w: not an Indonesian mobile number (08...)", ErrInvalidAccount)
	}
	if n := 1 + len(nsn); n < phoneDigitsMin || n > phoneDigitsMax {
		return "", fmt.Errorf("%w: mobile number must have %d to %d digits in 08... form, not %d", ErrInvalidAccount, phoneDigitsMin, phoneDigitsMax, n)
	}
	return "0" + nsn, nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
