package payout

import "context"

type requestIDKey struct{}

// WithRequestID returns ctx carrying the API request id that Create stores
// on a new payout and processor.Produce puts in a Kafka record header.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID is the request id ctx carries, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
