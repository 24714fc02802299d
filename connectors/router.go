package connectors

import "context"

// Router sends each call to the connector of the called bank (an
// e-wallet's host bank), or to a default one: how a bank-profiles file that
// gives some banks a base URL of their own is wired. Guard wraps a Router
// like any connector.
type Router struct {
	def    Connector
	byBank map[string]Connector
}

var _ Connector = (*Router)(nil)

// NewRouter routes the banks in byBank (keyed by bank code) to their
// connector and every other bank to def.
func NewRouter(def Connector, byBank map[string]Connector) *Router {
	return &Router{def: def, byBank: byBank}
}

func (r *Router) pick(code string) Connector {
	if c, ok := r.byBank[HostOf(code)]; ok {
		return c
	}
	return r.def
}

func (r *Router) Inquire(ctx context.Context, bankCode, accountNumber string) (Inquiry, error) {
	return r.pick(bankCode).Inquire(ctx, bankCode, accountNumber)
}

func (r *Router) Transfer(ctx context.Context, req TransferRequest) (Result, error) {
	return r.pick(req.BankCode).Transfer(ctx, req)
}

func (r *Router) Status(ctx context.Context, bankCode, reference string) (Result, error) {
	return r.pick(bankCode).Status(ctx, bankCode, reference)
}

func (r *Router) Statement(ctx context.Context, bankCode string, q StatementQuery) (StatementPage, error) {
	return r.pick(bankCode).Statement(ctx, bankCode, q)
}
