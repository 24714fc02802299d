package connectors

import "testing"

func TestNameScore(t *testing.T) {
	tests := []struct {
		given, bank string
		match       bool
	}{
		{"Budi Santoso", "BUDI SANTOSO", true},
		{"budi santoso", "BUDI SANTOSO", true},
		{"Santoso Budi", "BUDI SANTOSO", true},        // order
		{"Bpk. Budi Santoso", "BUDI SANTOSO", true},   // honorific
		{"Budi S.", "BUDI SANTOSO", true},             // initial
		{"Budi Santosa", "BUDI SANTOSO", true},        // typo in a long word
		{"Siti Nurhalizah", "SITI NURHALIZA", true},   // transliteration
		{"José Wijaya", "JOSE WIJAYA", true},          // accent
		{"Dewi Lestari Putri", "DEWI LESTARI", false}, // a word the bank does not have
		{"Budi", "BUDI SANTOSO", false},               // half a name
		{"Agus Wijaya Kusuma", "AGUS WIJAYA KUSUMA SAPUTRA", true},
		{"Budi Santoso", "RINA HIDAYAT", false},
		{"Andi", "ANDI", true}, // one-name holder
		{"Ani", "ANDI", false}, // short words must match exactly
		{"", "BUDI SANTOSO", false},
		{"Budi Santoso", "", false},
		{"PT Maju Jaya", "MAJU JAYA", true},
	}
	for _, tt := range tests {
		s := NameScore(tt.given, tt.bank)
		if got := s >= DefaultNameThreshold; got != tt.match {
			t.Errorf("NameScore(%q, %q) = %.3f; match %v, want %v", tt.given, tt.bank, s, got, tt.match)
		}
	}
}

func TestNormalizeName(t *testing.T) {
	got := NormalizeName("Bpk.  Budi-Santoso, S.E.")
	want := []string{"BUDI", "SANTOSO", "S", "E"}
	if len(got) != len(want) {
		t.Fatalf("NormalizeName = %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("NormalizeName = %q, want %q", got, want)
		}
	}
}
