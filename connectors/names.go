package connectors

import (
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// DefaultNameThreshold is the NameScore from which a given account holder
// name is taken to be the bank's.
const DefaultNameThreshold = 0.8

// honorifics are dropped before names are compared: banks print them
// inconsistently, merchants add them or not.
var honorifics = map[string]bool{
	"BAPAK": true, "BPK": true, "IBU": true, "SDR": true, "SDRI": true, "TN": true, "NY": true, "NN": true,
	"MR": true, "MRS": true, "MS": true, "DR": true, "IR": true, "HJ": true, "H": true, "PT": true, "CV": true, "TBK": true,
}

// NormalizeName folds a person's or company's name for comparison: upper
// case, accents removed, punctuation turned into spaces, honorifics dropped,
// runs of spaces collapsed. "Bpk. Budi  Santoso, S.E." -> "BUDI SANTOSO S E".
func NormalizeName(s string) []string {
	var b strings.Builder
	for _, r := range norm.NFD.String(s) {
		switch {
		case unicode.Is(unicode.Mn, r): // a combining accent
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(unicode.ToUpper(r))
		default:
			b.WriteByte(' ')
		}
	}
	var out []string
	for _, f := range strings.Fields(b.String()) {
		if !honorifics[f] {
			out = append(out, f)
		}
	}
	return out
}

// NameScore says how well a name given by a merchant matches the name the
// bank holds, from 0 (nothing alike) to 1 (the same after NormalizeName).
// It forgives what merchants commonly do: a different order of the words,
// an initial for a word ("BUDI S" for "BUDI SANTOSO"), a typo in a word, one
// word left out of a long name. Every word of the given name must match a
// different word of the bank's (exactly, as an initial, or within a small
// edit distance); the score is the share of the bank's words so matched,
// with initials and typos counting less than exact words.
func NameScore(given, bank string) float64 {
	g, k := NormalizeName(given), NormalizeName(bank)
	if len(g) == 0 || len(k) == 0 {
		return 0
	}
	used := make([]bool, len(k))
	var sum float64
	for _, w := range g {
		best, at := 0.0, -1
		for i, v := range k {
			if used[i] {
				continue
			}
			if s := wordScore(w, v); s > best {
				best, at = s, i
			}
		}
		if at < 0 || best < 0.5 {
			return 0 // a word the bank's name does not have: another person
		}
		used[at] = true
		sum += best
	}
	// Words of the bank's name the merchant left out count half: a
	// one-word name given for a two-word holder scores (1 + 0.5) / 2 = 0.75,
	// below the default threshold; three words of four score 0.875.
	missing := float64(len(k) - len(g))
	if missing < 0 {
		missing = 0
	}
	return min(1, (sum+0.5*missing)/float64(len(k)))
}

// wordScore compares two normalized words: 1 when equal, 0.9 when one is
// the other's initial, 1 - distance/length for a close spelling, else 0.
func wordScore(a, b string) float64 {
	if a == b {
		return 1
	}
	if (len(a) == 1 && strings.HasPrefix(b, a)) || (len(b) == 1 && strings.HasPrefix(a, b)) {
		return 0.9
	}
	ra, rb := []rune(a), []rune(b)
	n := max(len(ra), len(rb))
	if n < 4 {
		return 0 // short words must match exactly
	}
	d := levenshtein(ra, rb)
	if d > n/4 {
		return 0
	}
	return 1 - float64(d)/float64(n)
}

func levenshtein(a, b []rune) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
