package connectors

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// ProfileFile is a bank-profiles file (`--bank-profiles`, YAML) after
// loading: every bank's profile, and the base URL its calls go to.
//
// The file starts from the built-in profiles (DefaultProfiles), lays its
// `defaults` section over every bank, then each bank's own section over
// that bank. A setting the file leaves out keeps the value below it, so a
// file may say only what differs from the built-in profiles. docs/banks.md
// shows the format; deploy/profiles/example.yaml spells out every setting.
type ProfileFile struct {
	// BaseURL is where banks without a base_url of their own are called;
	// empty when the file does not say (the caller's --bank-url applies).
	BaseURL string
	// URLs holds the banks with a base_url of their own.
	URLs map[string]string
	// Profiles is every bank's profile.
	Profiles Profiles
}

// URLFor is the base URL of code's host bank: its own, the file's, or def.
func (f ProfileFile) URLFor(code, def string) string {
	if u := f.URLs[HostOf(code)]; u != "" {
		return u
	}
	if f.BaseURL != "" {
		return f.BaseURL
	}
	return def
}

// profileFileYAML is the file's shape. Pointers tell a setting left out
// from one set to zero.
type profileFileYAML struct {
	BaseURL  string                     `yaml:"base_url"`
	Defaults profileYAML                `yaml:"defaults"`
	Banks    map[string]bankProfileYAML `yaml:"banks"`
}

type profileYAML struct {
	Timeout      *string  `yaml:"timeout"`
	MaxInFlight  *int     `yaml:"max_in_flight"`
	RateLimit    *float64 `yaml:"rate_limit"`
	Burst        *int     `yaml:"burst"`
	SendAttempts *int     `yaml:"send_attempts"`
	RetryBase    *string  `yaml:"retry_base"`
	RetryMax     *string  `yaml:"retry_max"`
	// UnavailableLimit: how long a payout waits for the bank to come back
	// before it fails with BANK_UNAVAILABLE.
	UnavailableLimit *string      `yaml:"unavailable_limit"`
	Breaker          *breakerYAML `yaml:"breaker"`
	// Windows, when given, replaces the bank's windows ([] clears them).
	Windows *[]windowYAML `yaml:"windows"`
}

type bankProfileYAML struct {
	BaseURL     string `yaml:"base_url"`
	profileYAML `yaml:",inline"`
}

type breakerYAML struct {
	Window         *string  `yaml:"window"`
	Buckets        *int     `yaml:"buckets"`
	MinRequests    *int     `yaml:"min_requests"`
	FailureRatio   *float64 `yaml:"failure_ratio"`
	OpenFor        *string  `yaml:"open_for"`
	HalfOpenProbes *int     `yaml:"half_open_probes"`
}

type windowYAML struct {
	Kind  string   `yaml:"kind"`
	Start string   `yaml:"start"`
	End   string   `yaml:"end"`
	Days  []string `yaml:"days"`
}

// LoadProfileFile reads and parses a bank-profiles file; errors name the
// file, and within it the bank and the setting.
func LoadProfileFile(path string) (ProfileFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return ProfileFile{}, fmt.Errorf("bank profiles: %w", err)
	}
	f, err := ParseProfileFile(data)
	if err != nil {
		return ProfileFile{}, fmt.Errorf("bank profiles %s: %w", path, err)
	}
	return f, nil
}

// ParseProfileFile parses a bank-profiles file. Decoding is strict: an
// unknown key, an unknown bank, a malformed duration or URL, a negative
// number or a profile that fails Profile.Validate is an error naming the
// bank and the setting, and nothing is returned.
func ParseProfileFile(data []byte) (ProfileFile, error) {
	var raw profileFileYAML
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil && !errors.Is(err, io.EOF) {
		return ProfileFile{}, fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	// One document only: a second would be silently ignored otherwise.
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return ProfileFile{}, errors.New("more than one YAML document; a bank-profiles file holds one")
	}
	out := ProfileFile{URLs: map[string]string{}, Profiles: DefaultProfiles()}
	if raw.BaseURL != "" {
		if err := checkBaseURL(raw.BaseURL); err != nil {
			return ProfileFile{}, fmt.Errorf("base_url: %w", err)
		}
		out.BaseURL = raw.BaseURL
	}
	codes := make([]string, 0, len(out.Profiles))
	for code := range out.Profiles {
		codes = append(codes, code)
	}
	slices.Sort(codes)
	for _, code := range codes {
		p := out.Profiles[code]
		if err := raw.Defaults.apply(&p); err != nil {
			return ProfileFile{}, fmt.Errorf("defaults: %w", err)
		}
		out.Profiles[code] = p
	}
	banks := make([]string, 0, len(raw.Banks))
	for code := range raw.Banks {
		banks = append(banks, code)
	}
	slices.Sort(banks)
	for _, code := range banks {
		b := raw.Banks[code]
		p, ok := out.Profiles[code]
		if !ok {
			if d, known := Lookup(code); known && d.IsEWallet() {
				return ProfileFile{}, fmt.Errorf("banks.%s: %s is an e-wallet; its host bank %s's profile applies to it", code, code, d.HostBank)
			}
			return ProfileFile{}, fmt.Errorf("banks.%s: unknown bank (known: %s)", code, strings.Join(codes, ", "))
		}
		if err := b.apply(&p); err != nil {
			return ProfileFile{}, fmt.Errorf("banks.%s: %w", code, err)
		}
		if b.BaseURL != "" {
			if err := checkBaseURL(b.BaseURL); err != nil {
				return ProfileFile{}, fmt.Errorf("banks.%s.base_url: %w", code, err)
			}
			out.URLs[code] = b.BaseURL
		}
		out.Profiles[code] = p
	}
	for _, code := range codes {
		if err := out.Profiles[code].Validate(); err != nil {
			return ProfileFile{}, fmt.Errorf("banks.%s: %w", code, err)
		}
	}
	return out, nil
}

func checkBaseURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http or https URL with a host", s)
	}
	return nil
}

// apply lays the settings present over p.
func (y profileYAML) apply(p *Profile) error {
	if err := duration("timeout", y.Timeout, &p.Timeout); err != nil {
		return err
	}
	if err := count("max_in_flight", y.MaxInFlight, &p.MaxInFlight); err != nil {
		return err
	}
	if y.RateLimit != nil {
		if v := *y.RateLimit; math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return fmt.Errorf("rate_limit: %v is not a non-negative number of calls per second (0: no limit)", v)
		}
		p.RateLimit = *y.RateLimit
	}
	if err := count("burst", y.Burst, &p.Burst); err != nil {
		return err
	}
	if err := count("send_attempts", y.SendAttempts, &p.SendAttempts); err != nil {
		return err
	}
	if err := duration("retry_base", y.RetryBase, &p.RetryBase); err != nil {
		return err
	}
	if err := duration("retry_max", y.RetryMax, &p.RetryMax); err != nil {
		return err
	}
	if err := duration("unavailable_limit", y.UnavailableLimit, &p.UnavailableLimit); err != nil {
		return err
	}
	if b := y.Breaker; b != nil {
		if err := duration("breaker.window", b.Window, &p.Breaker.Window); err != nil {
			return err
		}
		if err := count("breaker.buckets", b.Buckets, &p.Breaker.Buckets); err != nil {
			return err
		}
		if err := count32("breaker.min_requests", b.MinRequests, &p.Breaker.MinRequests); err != nil {
			return err
		}
		if b.FailureRatio != nil {
			if v := *b.FailureRatio; math.IsNaN(v) || v <= 0 || v > 1 {
				return fmt.Errorf("breaker.failure_ratio: %v is not in (0, 1]", v)
			}
			p.Breaker.FailureRatio = *b.FailureRatio
		}
		if err := duration("breaker.open_for", b.OpenFor, &p.Breaker.OpenFor); err != nil {
			return err
		}
		if err := count32("breaker.half_open_probes", b.HalfOpenProbes, &p.Breaker.HalfOpenProbes); err != nil {
			return err
		}
	}
	if y.Windows != nil {
		ws := make([]Window, 0, len(*y.Windows))
		for i, w := range *y.Windows {
			win, err := w.window()
			if err != nil {
				return fmt.Errorf("windows[%d]: %w", i, err)
			}
			ws = append(ws, win)
		}
		p.Windows = ws
	}
	return nil
}

func duration(name string, s *string, dst *time.Duration) error {
	if s == nil {
		return nil
	}
	d, err := time.ParseDuration(*s)
	if err != nil {
		return fmt.Errorf("%s: %q is not a duration (e.g. 500ms, 10s, 1m)", name, *s)
	}
	if d <= 0 {
		return fmt.Errorf("%s: %s must be positive", name, *s)
	}
	*dst = d
	return nil
}

func count(name string, v *int, dst *int) error {
	if v == nil {
		return nil
	}
	if *v < 0 {
		return fmt.Errorf("%s: %d must not be negative", name, *v)
	}
	*dst = *v
	return nil
}

func count32(name string, v *int, dst *uint32) error {
	if v == nil {
		return nil
	}
	if *v < 0 || *v > math.MaxUint32 {
		return fmt.Errorf("%s: %d is not a count", name, *v)
	}
	*dst = uint32(*v)
	return nil
}

var weekdays = map[string]time.Weekday{
	"sunday": time.Sunday, "monday": time.Monday, "tuesday": time.Tuesday, "wednesday": time.Wednesday,
	"thursday": time.Thursday, "friday": time.Friday, "saturday": time.Saturday,
}

func (w windowYAML) window() (Window, error) {
	if w.Kind != WindowMaintenance && w.Kind != WindowCutOff {
		return Window{}, fmt.Errorf("kind: %q is not %s or %s", w.Kind, WindowMaintenance, WindowCutOff)
	}
	out := Window{Kind: w.Kind, Start: w.Start, End: w.End}
	if _, _, err := out.minutes(); err != nil {
		return Window{}, err
	}
	for _, d := range w.Days {
		wd, ok := weekdays[strings.ToLower(d)]
		if !ok {
			return Window{}, fmt.Errorf("days: %q is not a weekday (sunday ... saturday)", d)
		}
		out.Days = append(out.Days, wd)
	}
	return out, nil
}
