package api

import (
	"net/http/httptest"
	"net/netip"
	"net/url"
	"testing"

	"github.com/disburse/disburse/merchant"
)

func TestCheckCallbackURL(t *testing.T) {
	cases := []struct {
		url      string
		insecure bool
		ok       bool
	}{
		{"", false, true},
		{"https://merchant.example.com/callbacks?x=1", false, true},
		{"https://merchant.example.com:8443/cb", false, true},
		{"https://93.184.216.34/cb", false, true},
		{"HTTPS://Merchant.Example.com/cb", false, true},
		{"http://merchant.example.com/cb", false, false},
		{"http://merchant.example.com/cb", true, true},
		{"http://127.0.0.1:9000/cb", true, true},
		{"https://127.0.0.1/cb", false, false},
		{"https://127.1/cb", false, false},
		{"https://0x7f000001/cb", false, false},
		{"https://2130706433/cb", false, false},
		{"https://[::1]/cb", false, false},
		{"https://[fe80::1%25eth0]/cb", false, false},
		{"https://[fd00:ec2::254]/cb", false, false},
		{"https://169.254.169.254/cb", false, false},
		{"https://100.100.100.200/cb", false, false},
		{"https://192.168.1.1/cb", false, false},
		{"https://0.0.0.0/cb", false, false},
		{"https://[::ffff:10.0.0.1]/cb", false, false},
		{"https://[64:ff9b::7f00:1]/cb", false, false},
		{"https://localhost./cb", false, false},
		{"https://api.localhost/cb", false, false},
		{"https://metadata.google.internal/cb", false, false},
		{"mailto:a@example.com", true, false},
		{"https:///cb", true, false},
		{"https://:443/cb", true, false},
		{"//example.com/cb", true, false},
		{"https://a@example.com/", true, false},
		{"https://example.com/#", true, false},
		{"https://example.com:0/", true, false},
	}
	for _, c := range cases {
		fe := checkCallbackURL(c.url, c.insecure)
		if (fe == nil) != c.ok {
			t.Errorf("%q insecure=%v: %+v, want ok=%v", c.url, c.insecure, fe, c.ok)
		}
	}
}

func TestClientAddr(t *testing.T) {
	s := &Server{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}}
	cases := []struct {
		peer string
		xff  []string
		want string
	}{
		{"203.0.113.1:1", nil, "203.0.113.1"},
		{"203.0.113.1:1", []string{"198.51.100.1"}, "203.0.113.1"},
		{"[2001:db8::1]:1", nil, "2001:db8::1"},
		{"[::ffff:203.0.113.1]:1", nil, "203.0.113.1"},
		{"[fe80::1%eth0]:1", nil, "fe80::1"},
		{"10.0.0.1:1", []string{"198.51.100.1"}, "198.51.100.1"},
		{"10.0.0.1:1", []string{"1.1.1.1, 198.51.100.1"}, "198.51.100.1"},
		{"10.0.0.1:1", []string{"1.1.1.1", "198.51.100.1, 10.0.0.2"}, "198.51.100.1"},
		{"[fd00::1]:1", []string{"[2001:db8::9]:443"}, "2001:db8::9"},
		{"10.0.0.1:1", []string{"10.0.0.2"}, "10.0.0.2"},
		{"10.0.0.1:1", nil, "10.0.0.1"},
		{"10.0.0.1:1", []string{"1.1.1.1, bogus"}, "invalid IP"},
		{"10.0.0.1:1", []string{""}, "invalid IP"},
		{"garbage", nil, "invalid IP"},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.peer
		for _, v := range c.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := s.clientAddr(r).String(); got != c.want {
			t.Errorf("peer %s xff %q: %s, want %s", c.peer, c.xff, got, c.want)
		}
	}
}

// FuzzSettingsPatch: whatever the PATCH /v1/settings body, decoding and
// validation never panic, and what they accept meets the rules: at most
// MaxWhitelist normalized networks without repeats that parse back to
// themselves, and a callback URL that passes its own check.
func FuzzSettingsPatch(f *testing.F) {
	for _, seed := range []string{
		`{"callback_url":"https://merchant.example.com/cb","ip_whitelist":["203.0.113.0/24","2001:db8::/32"]}`,
		`{"ip_whitelist":["10.1.2.3/8","::ffff:1.2.3.4","fe80::1%eth0","1.2.3.4/33"]}`,
		`{"callback_url":"https://[::ffff:127.0.0.1]/"}`,
		`{"callback_url":"http://2130706433/","ip_whitelist":[]}`,
		`{"ip_whitelist":null,"callback_url":null}`,
	} {
		f.Add([]byte(seed), false)
	}
	f.Fuzz(func(t *testing.T, body []byte, insecure bool) {
		var in settingsPatch
		if p := decodeStrict(body, &in); p != nil {
			return
		}
		for _, env := range []string{"sandbox", "production"} {
			ch, errs := in.validate(env, insecure)
			if len(errs) > 0 {
				continue
			}
			if ch.CallbackURL != nil {
				u := *ch.CallbackURL
				if len(u) > MaxCallbackURL || checkCallbackURL(u, env == "sandbox" && insecure) != nil {
					t.Fatalf("accepted callback_url %q", u)
				}
				if u != "" && env == "production" && internalHostOf(u) {
					t.Fatalf("production accepted internal %q", u)
				}
			}
			if ch.IPWhitelist != nil {
				seen := map[netip.Prefix]bool{}
				if len(*ch.IPWhitelist) > merchant.MaxWhitelist {
					t.Fatalf("accepted %d entries", len(*ch.IPWhitelist))
				}
				for _, p := range *ch.IPWhitelist {
					again, err := merchant.ParseNetwork(p.String())
					if err != nil || again != p || p != p.Masked() || seen[p] || p.Addr().Is4In6() {
						t.Fatalf("accepted entry %v (again %v, %v)", p, again, err)
					}
					seen[p] = true
				}
			}
		}
	})
}

func internalHostOf(raw string) bool {
	u, err := url.Parse(raw)
	return err != nil || internalHost(u.Hostname())
}
