package connectors

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// InquiryCache is a Connector whose account inquiries are cached in memory
// (least recently used, with a time to live), per API instance: a merchant
// checking an account and then paying it, or a batch paying one account
// many times, asks the bank once. Only definite answers (VALID, INVALID,
// CLOSED) are kept; UNKNOWN and errors are asked again. Transfers and status
// queries pass through.
type InquiryCache struct {
	Connector
	ttl  time.Duration
	size int
	now  func() time.Time

	mu    sync.Mutex
	order *list.List // front: most recently used
	items map[inquiryKey]*list.Element
}

type inquiryKey struct{ bank, account string }

type inquiryEntry struct {
	key     inquiryKey
	inq     Inquiry
	expires time.Time
}

// NewInquiryCache caches next's inquiries for ttl, keeping at most size.
func NewInquiryCache(next Connector, ttl time.Duration, size int) *InquiryCache {
	return &InquiryCache{Connector: next, ttl: ttl, size: max(1, size), now: time.Now, order: list.New(), items: map[inquiryKey]*list.Element{}}
}

// Inquire answers from the cache, or asks the bank and keeps a definite answer.
func (c *InquiryCache) Inquire(ctx context.Context, bankCode, accountNumber string) (Inquiry, error) {
	k := inquiryKey{bankCode, accountNumber}
	now := c.now()
	c.mu.Lock()
	if el, ok := c.items[k]; ok {
		e := el.Value.(*inquiryEntry)
		if now.Before(e.expires) {
			c.order.MoveToFront(el)
			c.mu.Unlock()
			return e.inq, nil
		}
		c.order.Remove(el)
		delete(c.items, k)
	}
	c.mu.Unlock()
	inq, err := c.Connector.Inquire(ctx, bankCode, accountNumber)
	if err != nil || inq.Status == InquiryUnknown {
		return inq, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok { // filled meanwhile
		c.order.Remove(el)
	}
	c.items[k] = c.order.PushFront(&inquiryEntry{key: k, inq: inq, expires: now.Add(c.ttl)})
	for c.order.Len() > c.size {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*inquiryEntry).key)
	}
	return inq, nil
}
