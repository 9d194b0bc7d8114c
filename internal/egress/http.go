package egress

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// maxRedirects bounds the redirects a Client follows.
const maxRedirects = 5

// Client returns an HTTP client that contacts only what p allows: its
// transport dials through p.Dialer (every connection, redirects included,
// is checked after name resolution), uses no proxy (a proxy would make the
// connection for it), bounds the response headers, and each redirect
// target must be an http(s) URL that CheckURL accepts. timeout bounds a
// whole request, reading the body included.
func (p *Policy) Client(timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            p.Dialer(&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    10 * time.Second,
		ResponseHeaderTimeout:  30 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		MaxIdleConns:           16,
		MaxIdleConnsPerHost:    4,
		IdleConnTimeout:        90 * time.Second,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return fmt.Errorf("%w: more than %d redirects", ErrDenied, maxRedirects)
			}
			if _, err := p.CheckURL(req.URL.String(), "http", "https"); err != nil {
				return fmt.Errorf("redirect: %w", err)
			}
			return nil
		},
	}
}

// errInvalidAnswer stands for a transport error whose text would quote the
// remote side.
var errInvalidAnswer = errors.New("the server's answer is not valid HTTP")

// TransportError returns an error of an HTTP request that carries no text
// chosen by the remote side, to report to a tenant: the policy's refusals,
// time-outs, connection and name resolution errors are kept (their text is
// ours); the URL of a redirect is dropped; certificate errors are reduced
// to their kind; anything else (a malformed answer, whose error quotes
// it) becomes a generic error.
func TransportError(err error) error {
	if err == nil {
		return nil
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	var (
		nerr    net.Error
		operr   *net.OpError
		dnserr  *net.DNSError
		certerr *tls.CertificateVerificationError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
	)
	switch {
	case errors.Is(err, ErrDenied), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return err
	case errors.As(err, &dnserr):
		return err
	case errors.As(err, &certerr), errors.As(err, &unknown), errors.As(err, &host):
		return errors.New("tls: the server's certificate is not valid")
	case errors.As(err, &operr):
		return err
	case errors.As(err, &nerr) && nerr.Timeout():
		return fmt.Errorf("timeout: %w", context.DeadlineExceeded)
	}
	return errInvalidAnswer
}
