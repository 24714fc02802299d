package callbacks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"

	"github.com/disburse/disburse/payout"
)

// MaxURL bounds a callback URL.
const MaxURL = 2048

// Policy decides which callback URLs are allowed. The zero value is the
// production rule for every environment: https only, and the host must not
// resolve to a loopback, private, link-local, metadata or other
// non-public address.
type Policy struct {
	// AllowInsecureSandbox lets sandbox environments use plain http and any
	// address, loopback included (development and tests). Production
	// environments are never relaxed.
	AllowInsecureSandbox bool
	// Resolver looks host names up (nil: net.DefaultResolver).
	Resolver interface {
		LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
	}
}

// Relaxed reports whether environment's URLs skip the safety checks.
func (p Policy) Relaxed(environment string) bool {
	return p.AllowInsecureSandbox && environment == payout.Sandbox
}

// URLError says why a callback URL is refused. Code is a stable field-error
// code for the API (INVALID_URL, INSECURE_SCHEME, FORBIDDEN_ADDRESS,
// UNRESOLVABLE_HOST).
type URLError struct {
	Code    string
	Message string
}

func (e *URLError) Error() string { return "callback_url: " + e.Message }

func urlErr(code, format string, args ...any) *URLError {
	return &URLError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CheckURL validates a callback URL for environment when it is set: its
// form, its scheme, and every address its host resolves to. An empty URL is
// allowed (no callbacks). The error is a *URLError for a refused URL, or a
// plain error when the check itself failed (context ended).
func (p Policy) CheckURL(ctx context.Context, environment, raw string) error {
	if raw == "" {
		return nil
	}
	u, err := p.checkForm(environment, raw)
	if err != nil {
		return err
	}
	if p.Relaxed(environment) {
		return nil
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if reason := forbidden(ip); reason != "" {
			return urlErr("FORBIDDEN_ADDRESS", "%s is %s; callbacks go only to public addresses", ip, reason)
		}
		return nil
	}
	resolver := p.Resolver
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	addrs, err := resolver.LookupNetIP(ctx, "ip", host)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil || len(addrs) == 0 {
		return urlErr("UNRESOLVABLE_HOST", "the host %q does not resolve", host)
	}
	for _, ip := range addrs {
		if reason := forbidden(ip); reason != "" {
			return urlErr("FORBIDDEN_ADDRESS", "the host %q resolves to %s, which is %s; callbacks go only to public addresses", host, ip.Unmap(), reason)
		}
	}
	return nil
}

// checkForm checks what can be checked without the network, also at every
// delivery (the dialer checks the addresses).
func (p Policy) checkForm(environment, raw string) (*url.URL, error) {
	if len(raw) > MaxURL {
		return nil, urlErr("INVALID_URL", "must be at most %d characters", MaxURL)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Hostname() == "" || u.Opaque != "" {
		return nil, urlErr("INVALID_URL", "must be an absolute URL such as https://example.com/callbacks")
	}
	if strings.ContainsAny(raw, " \t\r\n") {
		return nil, urlErr("INVALID_URL", "must not contain white space")
	}
	if u.User != nil {
		return nil, urlErr("INVALID_URL", "must not carry credentials; verify callbacks by their signature instead")
	}
	if u.Fragment != "" {
		return nil, urlErr("INVALID_URL", "must not have a fragment")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !p.Relaxed(environment) {
			return nil, urlErr("INSECURE_SCHEME", "must use https")
		}
	default:
		return nil, urlErr("INVALID_URL", "must be an http(s) URL")
	}
	return u, nil
}

// extraForbidden are non-public ranges that netip's predicates miss.
var extraForbidden = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "a reserved address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a shared (carrier-grade NAT) address used by some cloud metadata services"},
	{netip.MustParsePrefix("192.0.0.0/24"), "a reserved address"},
	{netip.MustParsePrefix("192.0.2.0/24"), "a documentation address"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a benchmarking address"},
	{netip.MustParsePrefix("198.51.100.0/24"), "a documentation address"},
	{netip.MustParsePrefix("203.0.113.0/24"), "a documentation address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address"},
	{netip.MustParsePrefix("64:ff9b::/96"), "a NAT64 address (it can map to any IPv4 address)"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "a NAT64 address (it can map to any IPv4 address)"},
	{netip.MustParsePrefix("2001:db8::/32"), "a documentation address"},
	{netip.MustParsePrefix("2002::/16"), "a 6to4 address (it can map to any IPv4 address)"},
	{netip.MustParsePrefix("2001::/32"), "a Teredo address"},
}

// forbidden returns why ip may not receive callbacks, or "" when it may.
func forbidden(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case !ip.IsValid():
		return "not an address"
	case ip.IsLoopback():
		return "a loopback address"
	case ip == netip.MustParseAddr("169.254.169.254") || ip == netip.MustParseAddr("fd00:ec2::254"):
		return "a cloud metadata address"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return "a link-local address"
	case ip.IsPrivate():
		return "a private address"
	case ip.IsUnspecified():
		return "the unspecified address"
	case ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		return "a multicast address"
	case ip == netip.MustParseAddr("255.255.255.255"):
		return "the broadcast address"
	}
	for _, f := range extraForbidden {
		if f.prefix.Contains(ip) {
			return f.reason
		}
	}
	return ""
}

// errForbiddenDial is returned when a delivery would connect to a forbidden address.
var errForbiddenDial = errors.New("callback host resolved to a forbidden address")

// dialControl checks the address a connection is about to be made to,
// after DNS resolution, so a host that resolved to a public address when the
// URL was set and to a private one now (DNS rebinding) is refused.
func dialControl(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %q", errForbiddenDial, address)
	}
	if reason := forbidden(ap.Addr()); reason != "" {
		return fmt.Errorf("%w: %s is %s", errForbiddenDial, ap.Addr().Unmap(), reason)
	}
	return nil
}
