package callbacks

import (
	"context"
	"errors"
	"net/netip"
	"testing"
)

// fakeResolver answers fixed addresses, so the test needs no DNS.
type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, errors.New("no such host")
}

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func TestCheckURL(t *testing.T) {
	res := fakeResolver{
		"merchant.example": addrs("93.184.216.34"),
		"rebind.example":   addrs("93.184.216.34", "127.0.0.1"),
		"internal.example": addrs("10.1.2.3"),
		"v6.example":       addrs("2606:2800:220:1:248:1893:25c8:1946"),
		"meta.example":     addrs("fd00:ec2::254"),
	}
	strict := Policy{Resolver: res}
	relaxed := Policy{Resolver: res, AllowInsecureSandbox: true}
	cases := []struct {
		name   string
		policy Policy
		env    string
		url    string
		code   string // "" allowed
	}{
		{"metadata over http", strict, "production", "http://169.254.169.254/", "INSECURE_SCHEME"},
		{"metadata over https", strict, "production", "https://169.254.169.254/latest/meta-data", "FORBIDDEN_ADDRESS"},
		{"private over http", strict, "production", "http://10.0.0.1/", "INSECURE_SCHEME"},
		{"private over https", strict, "production", "https://10.0.0.1/", "FORBIDDEN_ADDRESS"},
		{"private 172.16/12", strict, "production", "https://172.20.0.5/cb", "FORBIDDEN_ADDRESS"},
		{"private 192.168/16", strict, "production", "https://192.168.1.1/cb", "FORBIDDEN_ADDRESS"},
		{"carrier-grade NAT", strict, "production", "https://100.100.100.200/", "FORBIDDEN_ADDRESS"},
		{"loopback literal", strict, "production", "https://127.0.0.1:8443/cb", "FORBIDDEN_ADDRESS"},
		{"loopback v6", strict, "production", "https://[::1]/cb", "FORBIDDEN_ADDRESS"},
		{"v4-mapped private", strict, "production", "https://[::ffff:10.0.0.1]/cb", "FORBIDDEN_ADDRESS"},
		{"unspecified", strict, "production", "https://0.0.0.0/cb", "FORBIDDEN_ADDRESS"},
		{"link-local v6", strict, "production", "https://[fe80::1]/cb", "FORBIDDEN_ADDRESS"},
		{"name resolving to private", strict, "production", "https://internal.example/cb", "FORBIDDEN_ADDRESS"},
		{"name with one loopback address", strict, "production", "https://rebind.example/cb", "FORBIDDEN_ADDRESS"},
		{"name resolving to v6 metadata", strict, "production", "https://meta.example/cb", "FORBIDDEN_ADDRESS"},
		{"unresolvable", strict, "production", "https://nowhere.example/cb", "UNRESOLVABLE_HOST"},
		{"not a URL", strict, "production", "not a url", "INVALID_URL"},
		{"relative", strict, "production", "/callbacks", "INVALID_URL"},
		{"ftp", strict, "production", "ftp://merchant.example/x", "INVALID_URL"},
		{"credentials", strict, "production", "https://u:p@merchant.example/x", "INVALID_URL"},
		{"fragment", strict, "production", "https://merchant.example/x#y", "INVALID_URL"},
		{"public name", strict, "production", "https://merchant.example/callbacks?src=disburse", ""},
		{"public v6 name", strict, "production", "https://v6.example/cb", ""},
		{"public literal", strict, "production", "https://93.184.216.34:8443/cb", ""},
		{"empty clears", strict, "production", "", ""},
		{"sandbox is strict without the switch", strict, "sandbox", "http://127.0.0.1:9000/cb", "INSECURE_SCHEME"},
		{"sandbox loopback with the switch", relaxed, "sandbox", "http://127.0.0.1:9000/cb", ""},
		{"sandbox private with the switch", relaxed, "sandbox", "http://10.0.0.1/", ""},
		{"production never relaxed: http", relaxed, "production", "http://10.0.0.1/", "INSECURE_SCHEME"},
		{"production never relaxed: metadata", relaxed, "production", "https://169.254.169.254/", "FORBIDDEN_ADDRESS"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.policy.CheckURL(context.Background(), c.env, c.url)
			var ue *URLError
			switch {
			case c.code == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.code != "" && !errors.As(err, &ue):
				t.Fatalf("got %v, want a URLError %s", err, c.code)
			case c.code != "" && ue.Code != c.code:
				t.Fatalf("got %s (%s), want %s", ue.Code, ue.Message, c.code)
			}
		})
	}
}

// TestCheckURLLocalhost uses the real resolver: localhost resolves to a
// loopback address and is refused in production.
func TestCheckURLLocalhost(t *testing.T) {
	err := Policy{}.CheckURL(context.Background(), "production", "https://localhost/cb")
	var ue *URLError
	if !errors.As(err, &ue) || ue.Code != "FORBIDDEN_ADDRESS" {
		t.Fatalf("https://localhost/cb: %v, want FORBIDDEN_ADDRESS", err)
	}
}

func TestDialControl(t *testing.T) {
	for addr, ok := range map[string]bool{
		"93.184.216.34:443":    true,
		"127.0.0.1:443":        false,
		"169.254.169.254:80":   false,
		"10.0.0.1:443":         false,
		"[::ffff:10.0.0.1]:80": false,
		"[::1]:443":            false,
		"garbage":              false,
	} {
		err := dialControl("tcp", addr, nil)
		if (err == nil) != ok || (err != nil && !errors.Is(err, errForbiddenDial)) {
			t.Errorf("dialControl(%s) = %v, want allowed=%v", addr, err, ok)
		}
	}
}
