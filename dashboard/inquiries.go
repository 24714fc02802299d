package dashboard

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/batch"
	"github.com/disburse/disburse/inquiry"
)

// maxInquiryText bounds the pasted or uploaded accounts: 1,000 lines of
// a bank code and an account number, with room.
const maxInquiryText = 256 << 10

type inquiriesView struct {
	Accounts string // the typed accounts, kept on an error
	Errors   []batch.RowError
	Invalid  int
	Max      int
}

// inquiries is the bulk account inquiry form: accounts pasted one a line
// ("bank_code,account_number") or uploaded as such a CSV.
func (s *Server) inquiries(w http.ResponseWriter, r *http.Request, rq *request) {
	s.view(w, r, rq, "inquiries", "inquiries", "inq.title", inquiriesView{Max: inquiry.MaxItems}, "", "")
}

// readAccounts reads "bank_code,account_number" lines (a header line
// naming bank_code is skipped, blank lines too).
func readAccounts(text string) ([]inquiry.Account, error) {
	cr := csv.NewReader(strings.NewReader(text))
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	var out []inquiry.Account
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		if len(out) == 0 && strings.EqualFold(strings.TrimSpace(rec[0]), "bank_code") {
			continue
		}
		if len(rec) != 2 {
			line, _ := cr.FieldPos(0)
			return nil, fmt.Errorf("line %d: want bank_code,account_number", line)
		}
		out = append(out, inquiry.Account{BankCode: strings.TrimSpace(rec[0]), AccountNumber: strings.TrimSpace(rec[1])})
	}
}

// askInquiries stores the job through api.Server.CreateInquiries (the
// checks of POST /v1/account-inquiries) and shows its page.
func (s *Server) askInquiries(w http.ResponseWriter, r *http.Request, rq *request) {
	text := r.PostFormValue("accounts")
	if f, _, err := r.FormFile("file"); err == nil {
		body, rerr := io.ReadAll(io.LimitReader(f, maxInquiryText+1))
		f.Close()
		if rerr != nil {
			s.internal(w, r, rq.lang, rerr)
			return
		}
		if strings.TrimSpace(string(body)) != "" {
			text = string(body)
		}
	}
	v := inquiriesView{Accounts: text, Max: inquiry.MaxItems}
	if len(text) > maxInquiryText {
		v.Accounts = ""
		s.view(w, r, rq, "inquiries", "inquiries", "inq.title", v, "", T(rq.lang, "inq.count"))
		return
	}
	accounts, err := readAccounts(text)
	if err != nil {
		s.view(w, r, rq, "inquiries", "inquiries", "inq.title", v, "", T(rq.lang, "batch.unreadable")+" "+err.Error())
		return
	}
	if len(accounts) == 0 || len(accounts) > inquiry.MaxItems {
		s.view(w, r, rq, "inquiries", "inquiries", "inq.title", v, "", T(rq.lang, "inq.count"))
		return
	}
	j, rows, invalid, err := s.API.CreateInquiries(r.Context(), rq.principal(), accounts)
	switch {
	case invalid > 0:
		v.Errors, v.Invalid = rows, invalid
		s.view(w, r, rq, "inquiries", "inquiries", "inq.title", v, "", fmt.Sprintf("%d %s", invalid, T(rq.lang, "inq.invalid")))
		return
	case errors.Is(err, api.ErrNoInquiryBank):
		s.view(w, r, rq, "inquiries", "inquiries", "inq.title", v, "", T(rq.lang, "inq.nobank"))
		return
	case err != nil:
		s.internal(w, r, rq.lang, err)
		return
	}
	s.Log.Info("bulk account inquiry from the dashboard", "merchant_id", rq.MerchantID, "environment", rq.Environment,
		"user_id", rq.ID, "job_id", j.ID, "items", j.ItemCount)
	http.Redirect(w, r, "/inquiries/"+j.ID, http.StatusSeeOther)
}

// inquiryPage shows a job's progress and its answers so far (the page
// reloads itself until the job completes).
func (s *Server) inquiryPage(w http.ResponseWriter, r *http.Request, rq *request) {
	id := r.PathValue("id")
	if len(id) > 64 {
		s.fail(w, r, rq, http.StatusNotFound, T(rq.lang, "err.notfound"))
		return
	}
	j, err := inquiry.NewStore(s.API.Ledger.DB()).Get(r.Context(), rq.MerchantID, rq.Environment, id)
	if errors.Is(err, inquiry.ErrNotFound) {
		s.fail(w, r, rq, http.StatusNotFound, T(rq.lang, "err.notfound"))
		return
	}
	if err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	s.view(w, r, rq, "inquiry", "inquiries", "inq.title", j, "", "")
}
