package main

import (
	"flag"
	"fmt"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/dashboard"
)

// dashboardConfig is the merchant dashboard's listener.
type dashboardConfig struct {
	addr, url string
}

func (d *dashboardConfig) register(fs *flag.FlagSet, defAddr string) {
	fs.StringVar(&d.addr, "dashboard-addr", defAddr, "merchant dashboard address (empty: no dashboard)")
	fs.StringVar(&d.url, "dashboard-url", "", "the dashboard's public URL, for password reset links (default: http://<dashboard-addr>)")
}

// startDashboard serves the dashboard on the API server s (the same
// stores and validation) and lets the operator API reach its users.
// secure marks its cookies Secure (every role but dev on loopback http).
func startDashboard(srv *servers, s *api.Server, pool *pgxpool.Pool, c dashboardConfig, secure bool) (string, *dashboard.Server, error) {
	if c.addr == "" {
		return "", nil, nil
	}
	ln, err := net.Listen("tcp", c.addr) // learn the port before the reset links need it
	if err != nil {
		return "", nil, fmt.Errorf("dashboard listener on %s: %w (choose another address with --dashboard-addr)", c.addr, err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	url := strings.TrimRight(c.url, "/")
	if url == "" {
		url = "http://" + addr
	}
	d, err := dashboard.New(s, pool, url, secure)
	if err != nil {
		return "", nil, err
	}
	s.Dashboard = d.Store
	if _, err := srv.start("dashboard", addr, d.Handler()); err != nil {
		return "", nil, err
	}
	return url, d, nil
}
