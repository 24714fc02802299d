package dashboard

import (
	"errors"
	"net/http"
	"strings"
)

type usersView struct {
	Users []User
	Email string
	Role  string
}

// users lists the merchant's users and adds one (owners only).
func (s *Server) users(w http.ResponseWriter, r *http.Request, rq *request) {
	s.showUsers(w, r, rq, usersView{Role: RoleFinance}, "", "")
}

func (s *Server) showUsers(w http.ResponseWriter, r *http.Request, rq *request, v usersView, flash, errText string) {
	list, err := s.Store.Users(r.Context(), rq.MerchantID)
	if err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	v.Users = list
	s.view(w, r, rq, "users", "users", "users.title", v, flash, errText)
}

func (s *Server) addUser(w http.ResponseWriter, r *http.Request, rq *request) {
	email := strings.TrimSpace(r.PostFormValue("email"))
	role := r.PostFormValue("role")
	password := r.PostFormValue("password")
	v := usersView{Email: email, Role: role}
	var msgs []string
	if !ValidEmail(email) {
		msgs = append(msgs, T(rq.lang, "err.email"))
	}
	if _, ok := rank[role]; !ok {
		msgs = append(msgs, T(rq.lang, "role"))
	}
	if len(password) < MinPassword || len(password) > MaxPassword {
		msgs = append(msgs, T(rq.lang, "err.password"))
	}
	if len(msgs) > 0 {
		s.showUsers(w, r, rq, v, "", strings.Join(msgs, " "))
		return
	}
	u, err := s.Store.AddUser(r.Context(), rq.MerchantID, email, password, role)
	if errors.Is(err, ErrEmailTaken) {
		s.showUsers(w, r, rq, v, "", T(rq.lang, "err.emailtaken"))
		return
	}
	if err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	s.Log.Info("dashboard user added", "merchant_id", rq.MerchantID, "by_user_id", rq.ID, "user_id", u.ID, "role", role)
	s.showUsers(w, r, rq, usersView{Role: RoleFinance}, T(rq.lang, "users.added"), "")
}
