package connectors

// Failure codes a bank gives in Result.FailureCode. They are the merchant
// API's failure codes of the same name.
const (
	FailureInvalidAccount = "INVALID_ACCOUNT"
	FailureAccountClosed  = "ACCOUNT_CLOSED"
	FailureBankRejected   = "BANK_REJECTED"
	FailureAmountLimit    = "AMOUNT_LIMIT_EXCEEDED"
)

// Inquiry statuses (Inquiry.Status).
const (
	InquiryValid   = "VALID"
	InquiryInvalid = "INVALID"
	InquiryClosed  = "CLOSED"
	InquiryUnknown = "UNKNOWN"
)
