package main

import (
	"flag"
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
// stores and validation) and lets the operator API reach its users;
// call it before the operator API starts serving.
// secure marks its cookies Secure (every role but dev on loopback http).
func startDashboard(srv *servers, s *api.Server, pool *pgxpool.Pool, c dashboardConfig, secure bool) (string, *dashboard.Server, error) {
	if c.addr == "" {
		return "", nil, nil
	}
	d, err := dashboard.New(s, pool, c.url, secure)
	if err != nil {
		return "", nil, err
	}
	// Plain: the API listener's JSON error shape is not for browsers.
	addr, err := srv.startPlain("dashboard", c.addr, d.Handler())
	if err != nil {
		return "", nil, err
	}
	// Reset links name the public URL; by default the listener's own
	// address (known only now, for a :0 port). Set before the operator
	// API starts serving, the only reader.
	url := strings.TrimRight(c.url, "/")
	if url == "" {
		url = "http://" + addr.String()
	}
	d.Store.BaseURL = url
	s.Dashboard = d.Store
	return url, d, nil
}
