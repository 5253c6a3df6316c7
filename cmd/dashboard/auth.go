package main

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/miniray/miniray/internal/httpauth"
)

// handler returns the dashboard's routes behind its token, when it has one. Every
// path needs the token but the health checks and the login: a route added later is
// guarded without a word. The page's own files answer a missing token with the
// login form; the API, its event stream and /metrics with a JSON 401.
func handler(st *state, cfg settingsValues, log *slog.Logger) http.Handler {
	guard := httpauth.New(cfg.token, cfg.tls != nil)
	return guard.Wrap(newRouter(st, log), httpauth.Rules{
		Open:   httpauth.Paths("/healthz", "/readyz"),
		Page:   isPage,
		Cookie: true,
		Login:  true,
	})
}

// isPage reports whether a path is one of the page's files rather than the API or
// the metrics.
func isPage(p string) bool {
	return p != "/api" && !strings.HasPrefix(p, "/api/") && p != "/metrics"
}

// scheme returns the URL scheme of the listener.
func (s settingsValues) scheme() string {
	if s.tls != nil {
		return "https"
	}
	return "http"
}
