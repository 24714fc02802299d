package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
)

// net/http answers some requests itself, before any handler runs, in
// plain text: a header block over MaxHeaderBytes (431), a request it
// cannot parse (400), an unsupported protocol or transfer encoding (505,
// 501). And a client that stops sending its headers gets its connection
// closed without an answer. Listener and ConnContext give those the JSON
// error shape and an X-Request-Id like every other error.
//
// net/http writes such an answer to the connection in one call, with a
// fixed layout no handler's answer has (a handler's answer always carries
// Date and Content-Length): that layout is what errorConn recognises.
var cannedError = regexp.MustCompile(`\AHTTP/1\.1 (\d{3}) ([^\r\n]*)\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n(\d{3}) ([^\r\n]*)\z`)

// Codes of the errors net/http detects.
const (
	CodeHeadersTooLarge = "HEADERS_TOO_LARGE"
	CodeMalformed       = "MALFORMED_REQUEST"
	CodeTimeout         = "REQUEST_TIMEOUT"
)

// Listener wraps ln so that the errors net/http writes itself are JSON.
// Serve with ConnContext set on the http.Server too, so that a timed-out
// header read is answered 408 only between requests, never over a handler.
func Listener(ln net.Listener) net.Listener { return errorListener{ln} }

type errorListener struct{ net.Listener }

func (l errorListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &errorConn{Conn: c}, nil
}

type connKey struct{}

// ConnContext is the http.Server's ConnContext for connections of Listener.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if ec, ok := c.(*errorConn); ok {
		return context.WithValue(ctx, connKey{}, ec)
	}
	return ctx
}

// errorConn rewrites net/http's plain-text errors and answers a request
// whose headers stop coming with a JSON 408.
type errorConn struct {
	net.Conn
	mu sync.Mutex
	// partial: bytes of a request head were read since the last handler
	// finished (or the connection opened).
	partial bool
	// handlers running on this connection.
	handlers atomic.Int32
	answered bool
}

func (c *errorConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	var ne net.Error
	c.mu.Lock()
	defer c.mu.Unlock()
	if n > 0 && c.handlers.Load() == 0 {
		c.partial = true
	}
	if err != nil && errors.As(err, &ne) && ne.Timeout() && c.partial && c.handlers.Load() == 0 && !c.answered {
		c.answered = true
		_, _ = c.Conn.Write(jsonAnswer(http.StatusRequestTimeout, CodeTimeout, "the request headers did not arrive in time"))
	}
	return n, err
}

func (c *errorConn) Write(p []byte) (int, error) {
	if m := cannedError.FindSubmatch(p); m != nil && bytes.Equal(m[1], m[3]) {
		code, _ := strconv.Atoi(string(m[1]))
		c.mu.Lock()
		c.answered = true
		c.mu.Unlock()
		if _, err := c.Conn.Write(jsonAnswer(code, cannedCode(code), string(m[4]))); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// CloseWrite keeps net/http's graceful close of an errored connection.
func (c *errorConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// handlerStarted and handlerDone bracket a handler on the connection.
func (c *errorConn) handlerStarted() { c.handlers.Add(1) }

func (c *errorConn) handlerDone() {
	c.mu.Lock()
	c.partial = false
	c.handlers.Add(-1)
	c.mu.Unlock()
}

func cannedCode(status int) string {
	switch status {
	case http.StatusRequestHeaderFieldsTooLarge:
		return CodeHeadersTooLarge
	case http.StatusRequestTimeout:
		return CodeTimeout
	}
	return CodeMalformed
}

// jsonAnswer is a whole HTTP/1.1 error answer that closes the connection.
func jsonAnswer(status int, code, message string) []byte {
	body, _ := json.Marshal(struct {
		Error Error `json:"error"`
	}{Error{Code: code, Message: message}})
	body = append(body, '\n')
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 " + strconv.Itoa(status) + " " + http.StatusText(status) + "\r\n")
	b.WriteString("Content-Type: application/json\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n")
	b.WriteString("X-Request-Id: " + newRequestID() + "\r\n")
	b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
	b.Write(body)
	return b.Bytes()
}
