package signature

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"id":"cb_1","type":"disbursement.completed"}`)
	both := Sign(now, body, "new-secret", "old-secret")
	if strings.Count(both, "v1=") != 2 || !strings.HasPrefix(both, "t=1700000000,v1=") {
		t.Fatalf("header %q", both)
	}
	cases := []struct {
		name   string
		secret string
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		{"current secret", "new-secret", both, body, now, nil},
		{"previous secret during grace", "old-secret", both, body, now, nil},
		{"unknown secret", "other", both, body, now, ErrNoMatch},
		{"body changed", "new-secret", both, append([]byte(" "), body...), now, ErrNoMatch},
		{"timestamp changed", "new-secret", strings.Replace(both, "t=1700000000", "t=1700000001", 1), body, now, ErrNoMatch},
		{"too old", "new-secret", both, body, now.Add(6 * time.Minute), ErrTooOld},
		{"from the future", "new-secret", both, body, now.Add(-6 * time.Minute), ErrTooOld},
		{"edge of tolerance", "new-secret", both, body, now.Add(5 * time.Minute), nil},
		{"malformed", "new-secret", "v1=abc", body, now, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Verify(c.secret, c.header, c.body, 5*time.Minute, c.now)
			if !errors.Is(err, c.want) || (c.want == nil && err != nil) {
				t.Fatalf("Verify = %v, want %v", err, c.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	sig := strings.Repeat("ab", 32)
	cases := []struct {
		header string
		ok     bool
		v1     int
	}{
		{"t=1,v1=" + sig, true, 1},
		{"t=1, v1=" + sig + ", v1=" + sig, true, 2},
		{"t=1,v0=zz,v1=" + sig, true, 1}, // unknown schemes ignored
		{"v1=" + sig + ",t=5", true, 1},
		{"", false, 0},
		{"t=1", false, 0},
		{"v1=" + sig, false, 0},
		{"t=1,t=2,v1=" + sig, false, 0},
		{"t=-1,v1=" + sig, false, 0},
		{"t=+1,v1=" + sig, false, 0},
		{"t=x,v1=" + sig, false, 0},
		{"t=1,v1=" + sig[:62], false, 0},
		{"t=1,v1=" + strings.Repeat("zz", 32), false, 0},
		{"t=1,v1", false, 0},
		{"t=1,v1=" + sig + strings.Repeat(",x=y", 2000), false, 0},
	}
	for _, c := range cases {
		h, err := Parse(c.header)
		if (err == nil) != c.ok || len(h.V1) != c.v1 {
			t.Errorf("Parse(%.40q) = %d v1, %v; want ok=%v with %d", c.header, len(h.V1), err, c.ok, c.v1)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%.40q): error %v is not ErrMalformed", c.header, err)
		}
	}
}

// FuzzParse: Parse never panics, accepts only well-formed headers, and a
// header it accepts round-trips through Verify's checks consistently.
func FuzzParse(f *testing.F) {
	f.Add("t=1700000000,v1=" + strings.Repeat("0f", 32))
	f.Fuzz(func(t *testing.T, header string) {
		h, err := Parse(header)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if h.Timestamp <= 0 || len(h.V1) == 0 {
			t.Fatalf("accepted %q as %+v", header, h)
		}
		for _, v := range h.V1 {
			if len(v) != 32 {
				t.Fatalf("accepted a %d-byte v1", len(v))
			}
		}
		// Verify must agree with Parse and never match without the right MAC.
		if err := Verify("secret", header, []byte("body"), time.Hour, time.Unix(h.Timestamp, 0)); err != nil && !errors.Is(err, ErrNoMatch) {
			t.Fatalf("Verify of a parsed header: %v", err)
		}
	})
}
