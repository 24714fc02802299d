package banksim

import (
	"hash/fnv"
	"strings"
)

// The name directory: every valid account has a holder whose name is picked
// from these lists by a hash of the account number, so the same account
// always has the same name, on every run and every server.
var (
	firstNames = []string{
		"Budi", "Siti", "Agus", "Dewi", "Rina", "Andi", "Putri", "Wahyu",
		"Sri", "Joko", "Ayu", "Bambang", "Indah", "Rudi", "Fitri", "Hendra",
		"Nur", "Dian", "Eko", "Yulia", "Rizky", "Anisa", "Fajar", "Lestari",
		"Gede", "Made", "Ketut", "Wayan", "Ratna", "Yusuf", "Intan", "Arif",
	}
	lastNames = []string{
		"Santoso", "Wijaya", "Saputra", "Hidayat", "Pratama", "Kusuma",
		"Nugroho", "Setiawan", "Siregar", "Nasution", "Simanjuntak", "Lubis",
		"Harahap", "Wibowo", "Susanto", "Gunawan", "Halim", "Rahman",
		"Utami", "Permana", "Sihombing", "Tanjung", "Putra", "Suryadi",
	}
)

// holderName is the account holder's name as banks return it: upper case.
// About one holder in ten has a single name, as many Indonesians do.
func holderName(account string) string {
	h := fnv.New64a()
	h.Write([]byte(account))
	v := h.Sum64()
	first := firstNames[v%uint64(len(firstNames))]
	v /= uint64(len(firstNames))
	if v%10 == 0 {
		return strings.ToUpper(first)
	}
	v /= 10
	return strings.ToUpper(first + " " + lastNames[v%uint64(len(lastNames))])
}
