package dashboard

import "net/http"

// Languages the dashboard speaks; Bahasa Indonesia first (the merchants'
// language), English second. The "lang" cookie picks one.
const (
	LangID = "id"
	LangEN = "en"
)

// messages are the dashboard's words: key -> {Bahasa Indonesia, English}.
// A key missing here renders as itself, which the tests catch.
var messages = map[string][2]string{
	"app.title":             {"Dasbor Disbursement", "Disbursement dashboard"},
	"nav.skip":              {"Langsung ke konten", "Skip to content"},
	"nav.disbursement":      {"Disbursement", "Disbursement"},
	"nav.payouts":           {"Transaksi", "Payouts"},
	"nav.batches":           {"Unggah massal", "Bulk upload"},
	"nav.reports":           {"Laporan", "Reports"},
	"nav.settings":          {"Pengaturan", "Settings"},
	"nav.users":             {"Pengguna", "Users"},
	"nav.logout":            {"Keluar", "Sign out"},
	"nav.main":              {"Menu utama", "Main menu"},
	"env.label":             {"Lingkungan", "Environment"},
	"env.sandbox":           {"Sandbox", "Sandbox"},
	"env.production":        {"Produksi", "Production"},
	"env.switch":            {"Ganti", "Switch"},
	"lang.label":            {"Bahasa", "Language"},
	"role":                  {"Peran", "Role"},
	"role.owner":            {"Pemilik", "Owner"},
	"role.finance":          {"Keuangan", "Finance"},
	"role.viewer":           {"Pengamat", "Viewer"},
	"login.title":           {"Masuk", "Sign in"},
	"login.email":           {"Email", "Email"},
	"login.password":        {"Kata sandi", "Password"},
	"login.submit":          {"Masuk", "Sign in"},
	"login.noaccount":       {"Belum punya akun?", "No account yet?"},
	"login.bad":             {"Email atau kata sandi salah.", "Wrong email or password."},
	"login.locked":          {"Terlalu banyak percobaan gagal; akun dikunci sampai", "Too many failed attempts; the account is locked until"},
	"login.throttled":       {"Terlalu banyak percobaan dari alamat ini; coba lagi sebentar lagi.", "Too many attempts from this address; try again in a minute."},
	"signup.title":          {"Daftar", "Sign up"},
	"signup.business":       {"Nama usaha", "Business name"},
	"signup.submit":         {"Buat akun", "Create account"},
	"signup.haveaccount":    {"Sudah punya akun?", "Have an account?"},
	"signup.passwordhint":   {"Minimal 10 karakter.", "At least 10 characters."},
	"err.business":          {"Nama usaha harus 1 sampai 200 karakter.", "The business name must be 1 to 200 characters."},
	"err.email":             {"Masukkan alamat email yang benar.", "Enter a valid email address."},
	"err.emailtaken":        {"Email ini sudah terdaftar.", "This email is already registered."},
	"err.password":          {"Kata sandi harus 10 sampai 128 karakter.", "The password must be 10 to 128 characters."},
	"err.csrf":              {"Formulir kedaluwarsa; muat ulang halaman dan coba lagi.", "The form expired; reload the page and try again."},
	"err.forbidden":         {"Peran Anda tidak mengizinkan tindakan ini.", "Your role does not allow this."},
	"err.notactive":         {"Lingkungan ini belum aktif.", "This environment is not active yet."},
	"err.internal":          {"Terjadi kesalahan; coba lagi. Kode:", "Something went wrong; try again. Reference:"},
	"err.notfound":          {"Tidak ditemukan.", "Not found."},
	"reset.title":           {"Atur ulang kata sandi", "Reset password"},
	"reset.new":             {"Kata sandi baru", "New password"},
	"reset.submit":          {"Simpan kata sandi", "Save password"},
	"reset.bad":             {"Tautan ini tidak dikenal, sudah dipakai atau kedaluwarsa; minta tautan baru ke operator.", "This link is unknown, used or expired; ask the operator for a new one."},
	"reset.done":            {"Kata sandi disimpan. Silakan masuk.", "Password saved. Please sign in."},
	"disb.title":            {"Disbursement", "Disbursement"},
	"disb.intro":            {"Kirim uang ke rekening bank dan e-wallet lewat API. Aktifkan sandbox untuk mulai mencoba dengan saldo demo.", "Send money to bank accounts and e-wallets through the API. Activate sandbox to start trying it with a demo balance."},
	"disb.activate":         {"Aktivasi", "Aktivasi (activate)"},
	"disb.active":           {"Aktif", "Active"},
	"disb.inactive":         {"Belum aktif", "Not active"},
	"disb.activated":        {"Sandbox aktif. Saldo demo sudah ditambahkan.", "Sandbox is active. The demo deposit is on your balance."},
	"disb.keyonce":          {"Kunci rahasia ini hanya ditampilkan sekali. Simpan dengan aman sekarang.", "This secret key is shown only once. Store it securely now."},
	"disb.secretkey":        {"Kunci rahasia", "Secret key"},
	"disb.requestprod":      {"Minta aktivasi", "Request activation"},
	"disb.prodintro":        {"Produksi memindahkan uang sungguhan dan diaktifkan setelah disetujui operator.", "Production moves real money and is activated once the operator approves."},
	"disb.requested":        {"Permintaan aktivasi dikirim pada", "Activation requested on"},
	"disb.waiting":          {"menunggu persetujuan operator.", "waiting for the operator's approval."},
	"disb.balance":          {"Saldo", "Balance"},
	"disb.available":        {"Tersedia", "Available"},
	"disb.pending":          {"Dalam proses", "In flight"},
	"disb.statement":        {"Mutasi saldo", "Statement of movements"},
	"disb.prodkey":          {"Produksi aktif. Buat kunci rahasia produksi di Pengaturan.", "Production is active. Create your production secret key in Settings."},
	"col.date":              {"Waktu", "Time"},
	"col.type":              {"Jenis", "Type"},
	"col.amount":            {"Jumlah", "Amount"},
	"col.balanceafter":      {"Saldo setelah", "Balance after"},
	"col.memo":              {"Keterangan", "Memo"},
	"col.reference":         {"Referensi", "Reference"},
	"col.id":                {"ID", "ID"},
	"col.batch":             {"Batch", "Batch"},
	"col.status":            {"Status", "Status"},
	"col.bank":              {"Bank", "Bank"},
	"col.account":           {"Rekening", "Account"},
	"col.fee":               {"Biaya", "Fee"},
	"col.failure":           {"Kode gagal", "Failure code"},
	"col.created":           {"Dibuat", "Created"},
	"col.count":             {"Jumlah transaksi", "Count"},
	"col.day":               {"Hari", "Day"},
	"col.what":              {"Kejadian", "What"},
	"col.rows":              {"Baris", "Rows"},
	"col.row":               {"Baris (tanpa header)", "Row (header not counted)"},
	"col.field":             {"Kolom", "Field"},
	"col.error":             {"Kesalahan", "Error"},
	"col.progress":          {"Kemajuan", "Progress"},
	"col.email":             {"Email", "Email"},
	"none":                  {"Belum ada data.", "Nothing yet."},
	"set.title":             {"Pengaturan", "Settings"},
	"set.key":               {"Kunci rahasia", "Secret key"},
	"set.keyintro":          {"Sandbox dan produksi punya kunci rahasia berbeda. Rotasi membuat kunci baru; kunci lama tetap berlaku selama masa tenggang.", "Sandbox and production have different secret keys. Rotating makes a new key; the old one keeps working for a grace period."},
	"set.rotate":            {"Rotasi kunci", "Rotate key"},
	"set.rotated":           {"Kunci baru dibuat. Kunci lama berlaku sampai", "New key created. The old key works until"},
	"set.keyhint":           {"Kunci", "Key"},
	"set.keystatus":         {"Status", "Status"},
	"set.expires":           {"Berakhir", "Expires"},
	"set.whitelist":         {"IP whitelist", "IP whitelist"},
	"set.whitelistintro":    {"Satu alamat IP atau prefiks CIDR per baris. Kosong: semua alamat diizinkan.", "One IP address or CIDR prefix per line. Empty: every address is allowed."},
	"set.youraddr":          {"Alamat Anda saat ini:", "Your address now:"},
	"set.save":              {"Simpan", "Save"},
	"set.saved":             {"Tersimpan.", "Saved."},
	"set.notinlist":         {"Peringatan: alamat Anda tidak ada di whitelist; panggilan API dari alamat ini akan ditolak.", "Warning: your address is not in the whitelist; API calls from it will be refused."},
	"set.callback":          {"URL callback", "Callback URL"},
	"set.callbackintro":     {"Kami mengirim POST bertanda tangan ke URL ini saat transaksi selesai.", "We POST a signed callback to this URL when a payout ends."},
	"set.callbacksecret":    {"Rahasia callback", "Callback secret"},
	"set.sendtest":          {"Kirim callback uji", "Send test callback"},
	"set.testresult":        {"Jawaban penerima", "The receiver's answer"},
	"set.noanswer":          {"Tidak ada jawaban HTTP", "No HTTP answer"},
	"set.audit":             {"Riwayat perubahan", "Change history"},
	"set.who":               {"Oleh", "By"},
	"set.setting":           {"Pengaturan", "Setting"},
	"pay.title":             {"Transaksi", "Payouts"},
	"pay.search":            {"Cari", "Search"},
	"pay.from":              {"Dari tanggal", "From date"},
	"pay.to":                {"Sampai tanggal", "To date"},
	"pay.any":               {"Semua", "Any"},
	"pay.more":              {"Halaman berikutnya", "Next page"},
	"pay.timeline":          {"Riwayat status", "Status timeline"},
	"pay.bankcalls":         {"Panggilan ke bank", "Bank calls"},
	"pay.callbacks":         {"Callback", "Callbacks"},
	"pay.redeliver":         {"Kirim ulang", "Redeliver"},
	"pay.redelivered":       {"Callback dijadwalkan untuk dikirim ulang.", "The callback is queued for redelivery."},
	"batch.title":           {"Unggah massal", "Bulk upload"},
	"batch.intro":           {"Unggah file CSV (maksimal 100.000 baris) dengan kolom reference_id, bank_code, account_number, amount, dan opsional description, account_holder_name.", "Upload a CSV file (up to 100,000 rows) with the columns reference_id, bank_code, account_number, amount, and optionally description, account_holder_name."},
	"batch.file":            {"File CSV", "CSV file"},
	"batch.reference":       {"Referensi batch (opsional)", "Batch reference (optional)"},
	"batch.check":           {"Periksa file", "Check file"},
	"batch.valid":           {"baris valid", "valid rows"},
	"batch.invalid":         {"baris tidak valid; tidak ada yang dikirim.", "invalid rows; nothing has been sent."},
	"batch.total":           {"Total", "Total"},
	"batch.send":            {"Kirim", "Send"},
	"batch.sendvalid":       {"Kirim hanya baris valid", "Send only the valid rows"},
	"batch.fix":             {"Perbaiki file lalu unggah lagi, atau kirim hanya baris yang valid.", "Fix the file and upload it again, or send only the valid rows."},
	"batch.list":            {"Batch terakhir", "Recent batches"},
	"batch.progress":        {"Kemajuan batch", "Batch progress"},
	"batch.done":            {"Selesai", "Done"},
	"batch.results":         {"Unduh file hasil", "Download the results file"},
	"batch.sent":            {"terkirim", "sent"},
	"batch.finished":        {"selesai", "finished"},
	"batch.failed":          {"gagal", "failed"},
	"batch.toomany":         {"File berisi lebih dari 100.000 baris; pecah menjadi beberapa file.", "The file holds more than 100,000 rows; split it."},
	"batch.unreadable":      {"File tidak bisa dibaca sebagai CSV:", "The file could not be read as CSV:"},
	"batch.empty":           {"File tidak berisi baris.", "The file has no rows."},
	"batch.nofile":          {"Pilih file CSV.", "Choose a CSV file."},
	"batch.moreerrors":      {"baris tidak valid lainnya tidak ditampilkan", "more invalid rows not shown"},
	"rep.title":             {"Laporan", "Reports"},
	"rep.groupby":           {"Kelompokkan per", "Group by"},
	"rep.by.day":            {"Hari", "Day"},
	"rep.by.bank":           {"Bank", "Bank"},
	"rep.by.status":         {"Status", "Status"},
	"rep.show":              {"Tampilkan", "Show"},
	"rep.download":          {"Unduh CSV", "Download CSV"},
	"rep.chart":             {"Grafik jumlah transaksi", "Chart of payout counts"},
	"rep.unavailable":       {"Laporan tidak tersedia di server ini (ClickHouse belum dikonfigurasi).", "Reports are not available on this server (ClickHouse is not configured)."},
	"rep.bad":               {"Rentang tanggal tidak valid:", "Invalid date range:"},
	"users.title":           {"Pengguna", "Users"},
	"users.add":             {"Tambah pengguna", "Add user"},
	"users.added":           {"Pengguna ditambahkan.", "User added."},
	"users.initialpassword": {"Kata sandi awal", "Initial password"},
	"users.roles":           {"Pemilik: semua. Keuangan: unggah dan kirim batch, kirim ulang callback. Pengamat: hanya melihat.", "Owner: everything. Finance: uploads and sends batches, redelivers callbacks. Viewer: reads only."},
}

// T is the text of key in lang.
func T(lang, key string) string {
	m, ok := messages[key]
	if !ok {
		return key
	}
	if lang == LangEN {
		return m[1]
	}
	return m[0]
}

// langOf is the request's language: the lang cookie, else the browser's
// Accept-Language when it prefers English, else Bahasa Indonesia.
func langOf(r *http.Request) string {
	if c, err := r.Cookie("lang"); err == nil && (c.Value == LangID || c.Value == LangEN) {
		return c.Value
	}
	if al := r.Header.Get("Accept-Language"); len(al) >= 2 && al[:2] == "en" {
		return LangEN
	}
	return LangID
}
