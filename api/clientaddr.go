package api

import (
	"net/http"
	"net/netip"
	"strings"
)

// clientAddr is the address a call comes from: the socket's peer, or, when
// that peer is a trusted proxy, the first address in X-Forwarded-For read
// from the right that is not itself a trusted proxy. Entries left of it
// were written by the client and are never believed. An entry that does
// not parse yields the invalid address, which no whitelist contains.
func (s *Server) clientAddr(r *http.Request) netip.Addr {
	peer, ok := parseHop(r.RemoteAddr)
	if !ok || !s.trusted(peer) {
		return peer
	}
	hops := forwardedFor(r.Header.Values("X-Forwarded-For"))
	addr := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseHop(hops[i])
		if !ok {
			return netip.Addr{}
		}
		if !s.trusted(a) {
			return a
		}
		addr = a
	}
	return addr // every hop is a trusted proxy: the innermost one is the client
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedFor splits every X-Forwarded-For header, in order, into hops.
func forwardedFor(values []string) []string {
	var hops []string
	for _, v := range values {
		for _, h := range strings.Split(v, ",") {
			hops = append(hops, strings.TrimSpace(h))
		}
	}
	return hops
}

// parseHop reads an address as a socket or a proxy writes it: "ip",
// "ip:port", "[ipv6]:port"; IPv4-mapped IPv6 becomes IPv4 and zones are dropped.
func parseHop(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return "an unknown address"
	}
	return a.String()
}
