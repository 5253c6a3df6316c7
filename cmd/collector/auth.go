package main

import (
	"crypto/tls"
	"net/http"

	"github.com/miniray/miniray/internal/httpauth"
)

// httpSecurity is how the collector's HTTP listener is protected.
type httpSecurity struct {
	token string      // ingest_token; empty needs none
	tls   *tls.Config // nil serves plain HTTP
	open  bool        // reachable without a token
}

// wrap puts h behind the ingest token, when there is one. Every path needs it but
// the health checks and the metrics, which hold no task data: whatever is
// registered under /api/ is guarded without a word.
func (s httpSecurity) wrap(h http.Handler) http.Handler {
	guard := httpauth.New(s.token, s.tls != nil)
	return guard.Wrap(h, httpauth.Rules{
		Open: httpauth.Paths("/healthz", "/readyz", "/metrics"),
	})
}

// scheme returns the URL scheme of the listener.
func (s httpSecurity) scheme() string {
	if s.tls != nil {
		return "https"
	}
	return "http"
}
