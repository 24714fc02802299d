package batch

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func readCSV(t *testing.T, body string, h Header) (*Parsed, error) {
	t.Helper()
	return Read(strings.NewReader(body), "text/csv", h)
}

func TestCSV(t *testing.T) {
	body := "\xEF\xBB\xBFamount,bank_code,reference_id,account_number,description\n" +
		"150000,bca,r1,1234567890,\"rent, march\"\n" +
		"200000,bni,r2,9876543210,\"said \"\"hi\"\"\"\n"
	p, err := readCSV(t, body, Header{ReferenceID: "b1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Items) != 2 || p.InvalidRows != 0 || p.Rows != 2 {
		t.Fatalf("got %d items, %d invalid, %d rows: %+v", len(p.Items), p.InvalidRows, p.Rows, p.Errors)
	}
	if it := p.Items[0]; it.Description != "rent, march" || it.Amount != 150000 || it.Currency != "IDR" || it.Row != 1 {
		t.Fatalf("item 1: %+v", it)
	}
	if p.Items[1].Description != `said "hi"` {
		t.Fatalf("quoted quote: %q", p.Items[1].Description)
	}
}

func TestCSVRowErrors(t *testing.T) {
	body := "reference_id,bank_code,account_number,amount\n" +
		"r1,bca,1234567890,100000\n" +
		"r2,bca,1234567890,12.5\n" + // wrong type
		"r3,xyz,1234567890,100000\n" + // unknown bank
		"r1,bca,1234567890,100000\n" + // duplicate reference in the batch
		"r5,bca,1234567890\n" + // too few fields
		"r6,bca,12ab,-4\n" // two bad fields, one row
	p, err := readCSV(t, body, Header{ReferenceID: "b1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Items) != 1 || p.InvalidRows != 5 || p.Rows != 6 {
		t.Fatalf("got %d items, %d invalid rows, %d rows", len(p.Items), p.InvalidRows, p.Rows)
	}
	want := map[string]bool{"2/amount/INVALID_TYPE": true, "3/bank_code/UNKNOWN_BANK": true, "4/reference_id/DUPLICATE_IN_BATCH": true,
		"5/row/WRONG_FIELD_COUNT": true, "6/account_number/INVALID_FORMAT": true, "6/amount/TOO_SMALL": true}
	for _, e := range p.Errors {
		delete(want, fmt.Sprintf("%d/%s/%s", e.Row, e.Field, e.Code))
	}
	if len(want) > 0 {
		t.Fatalf("missing errors %v in %+v", want, p.Errors)
	}
}

func TestBadFiles(t *testing.T) {
	header := "reference_id,bank_code,account_number,amount\n"
	var many strings.Builder
	many.WriteString(header)
	for i := 0; i <= MaxItems; i++ {
		fmt.Fprintf(&many, "r%d,bca,1234567890,100000\n", i)
	}
	cases := []struct {
		name, body string
		tooMany    bool
	}{
		{"empty", "", false},
		{"unknown column", "reference_id,bank,account_number,amount\n", false},
		{"missing column", "reference_id,bank_code,amount\n", false},
		{"duplicate column", "reference_id,bank_code,account_number,amount,amount\n", false},
		{"bad quoting", header + "r1,\"bca,1234567890,100000\n", false},
		{"binary", "\x00\x01\x02\xff\xfe\x89PNG\r\n\x1a\n", false},
		{"100,001 rows", many.String(), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := readCSV(t, c.body, Header{ReferenceID: "b"})
			var fe *FormatError
			if c.tooMany {
				if !errors.Is(err, ErrTooManyItems) {
					t.Fatalf("got %v, want ErrTooManyItems", err)
				}
				return
			}
			if !errors.As(err, &fe) {
				t.Fatalf("got %v, want a FormatError", err)
			}
		})
	}
}

func TestJSON(t *testing.T) {
	good := `{"reference_id":"b1","mode":"partial","items":[
		{"reference_id":"r1","bank_code":"bca","account_number":"1234567890","amount":100000},
		{"reference_id":"r2","bank_code":"bca","account_number":"1234567890","amount":"x"},
		{"reference_id":"r3","bank_code":"bca","account_number":"1234567890","amount":100000,"evil":1},
		{"reference_id":"r4","reference_id":"r5","bank_code":"bca","account_number":"1234567890","amount":100000},
		7]}`
	p, err := Read(strings.NewReader(good), "application/json", Header{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Header.ReferenceID != "b1" || p.Header.Mode != Partial || len(p.Items) != 1 || p.InvalidRows != 4 {
		t.Fatalf("header %+v, %d items, %d invalid: %+v", p.Header, len(p.Items), p.InvalidRows, p.Errors)
	}
	for _, bad := range []string{``, `[]`, `{"items":[]} {}`, `{"items":[],"items":[]}`, `{"reference_id":"b","items":{}}`,
		`{"reference_id":"b","extra":1,"items":[]}`, `{"reference_id":"b"}`, `{"items":[{"a":1}`} {
		if _, err := Read(strings.NewReader(bad), "application/json", Header{}); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	var big bytes.Buffer
	big.WriteString(`{"reference_id":"b","items":[`)
	for i := 0; i <= MaxItems; i++ {
		if i > 0 {
			big.WriteByte(',')
		}
		fmt.Fprintf(&big, `{"reference_id":"r%d","bank_code":"bca","account_number":"1234567890","amount":100000}`, i)
	}
	big.WriteString(`]}`)
	if _, err := Read(&big, "application/json", Header{}); !errors.Is(err, ErrTooManyItems) {
		t.Fatalf("100,001 items: %v", err)
	}
}

// FuzzCSV: any body either fails as a batch or yields valid items with
// unique references and row numbers in range.
func FuzzCSV(f *testing.F) {
	f.Add("reference_id,bank_code,account_number,amount\nr1,bca,1234567890,100000\n")
	f.Add("\xEF\xBB\xBFamount,reference_id,bank_code,account_number\n\"1\"\"0\",r,bca,1\n")
	f.Add("reference_id,bank_code,account_number,amount\n\"r1\nx\",bca,1234567890,100000\n")
	f.Fuzz(func(t *testing.T, body string) {
		p, err := Read(strings.NewReader(body), "text/csv", Header{ReferenceID: "b"})
		if err != nil {
			return
		}
		checkParsed(t, p)
	})
}

// FuzzJSON is FuzzCSV for JSON batches.
func FuzzJSON(f *testing.F) {
	f.Add(`{"reference_id":"b","items":[{"reference_id":"r1","bank_code":"bca","account_number":"1234567890","amount":100000}]}`)
	f.Add(`{"items":[{"reference_id":"r1","amount":1e99}],"mode":"partial"}`)
	f.Add(`{"items":[{"reference_id":"\ud800","bank_code":"bca"}]}`)
	f.Fuzz(func(t *testing.T, body string) {
		p, err := Read(strings.NewReader(body), "application/json", Header{})
		if err != nil {
			return
		}
		checkParsed(t, p)
	})
}

func checkParsed(t *testing.T, p *Parsed) {
	seen := map[string]bool{}
	for _, it := range p.Items {
		if errs := it.Validate(); len(errs) > 0 {
			t.Fatalf("invalid item accepted: %+v %+v", it, errs)
		}
		if seen[it.ReferenceID] {
			t.Fatalf("reference %q accepted twice", it.ReferenceID)
		}
		seen[it.ReferenceID] = true
		if it.Row < 1 || it.Row > p.Rows {
			t.Fatalf("row %d outside 1..%d", it.Row, p.Rows)
		}
	}
	if len(p.Items)+p.InvalidRows != p.Rows {
		t.Fatalf("%d items + %d invalid != %d rows", len(p.Items), p.InvalidRows, p.Rows)
	}
}

func TestUTF8Reader(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{"plain ascii", true},
		{"héllo wörld — 日本語 🙂", true},
		{"bad \xff byte", false},
		{"truncated \xe6\x97", false},
		{"overlong \xc0\xaf", false},
	} {
		// One byte per underlying read: every multi-byte sequence is split.
		got, err := io.ReadAll(&utf8Reader{r: iotest.OneByteReader(strings.NewReader(c.in))})
		if c.ok && (err != nil || string(got) != c.in) {
			t.Errorf("%q: got %q, %v", c.in, got, err)
		}
		if !c.ok && !errors.Is(err, ErrNotUTF8) {
			t.Errorf("%q: got %v, want ErrNotUTF8", c.in, err)
		}
	}
}

func TestUTF8ReaderTinyBuffers(t *testing.T) {
	in := "héllo wörld — 日本語 🙂 end"
	u := &utf8Reader{r: iotest.HalfReader(strings.NewReader(in))}
	var out []byte
	buf := make([]byte, 2)
	for {
		n, err := u.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if string(out) != in {
		t.Fatalf("got %q", out)
	}
}
