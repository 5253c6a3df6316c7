// Package httpauth guards miniray's HTTP listeners with a bearer token.
//
// Programs send the token in an Authorization header. A browser cannot add that
// header to the page's requests or to an EventSource, so the dashboard's page logs
// in once with the token (a form, or /login?token=...) and gets it back as a
// cookie that is HttpOnly (scripts cannot read it) and SameSite=Strict (other
// sites cannot make the browser send it). Either way the token is compared in
// constant time.
package httpauth

import (
	"crypto/sha256"
	"crypto/subtle"
	"html/template"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// CookieName is the cookie that carries the token of a logged-in browser.
const CookieName = "miniray_token"

// LoginPath is where a browser logs in, LogoutPath where it drops its cookie.
const (
	LoginPath  = "/login"
	LogoutPath = "/logout"
)

// Guard checks requests against one token. A nil Guard lets everything through.
type Guard struct {
	sum [sha256.Size]byte
	// secure marks the cookie Secure, so that it is only sent over HTTPS.
	secure bool
}

// New returns a guard for token, or nil when token is empty. secure says the
// listener serves HTTPS.
func New(token string, secure bool) *Guard {
	if token == "" {
		return nil
	}
	return &Guard{sum: sha256.Sum256([]byte(token)), secure: secure}
}

// valid compares hashes, so that neither the content nor the length of the token
// leaks through the time a comparison takes.
func (g *Guard) valid(token string) bool {
	sum := sha256.Sum256([]byte(token))
	return token != "" && subtle.ConstantTimeCompare(sum[:], g.sum[:]) == 1
}

// Authorized reports whether r carries the token, in an Authorization: Bearer
// header or, when cookie is set, in the login cookie.
func (g *Guard) Authorized(r *http.Request, cookie bool) bool {
	if g == nil {
		return true
	}
	if scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok &&
		strings.EqualFold(scheme, "Bearer") {
		return g.valid(strings.TrimSpace(token))
	}
	if cookie {
		if c, err := r.Cookie(CookieName); err == nil {
			return g.valid(c.Value)
		}
	}
	return false
}

// Rules say which requests a [Guard] lets through and how it refuses the others.
type Rules struct {
	// Open reports the paths that need no token, such as health checks.
	Open func(path string) bool
	// Page reports the paths of the browser page: without the token they get the
	// login form, and the login cookie is accepted as the token. Other paths get a
	// JSON error and, when Cookie is set, accept the cookie too.
	Page func(path string) bool
	// Cookie accepts the login cookie on every path, as the page's API calls and
	// its event stream carry it, not a header.
	Cookie bool
	// Login serves LoginPath and LogoutPath.
	Login bool
}

// Wrap returns h behind the guard. A nil guard returns h unchanged.
func (g *Guard) Wrap(h http.Handler, rules Rules) http.Handler {
	if g == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case rules.Login && p == LoginPath:
			g.login(w, r)
		case rules.Login && p == LogoutPath:
			g.logout(w, r)
		case rules.Open != nil && rules.Open(p):
			h.ServeHTTP(w, r)
		case rules.Page != nil && rules.Page(p):
			if !g.Authorized(r, true) {
				g.form(w, http.StatusUnauthorized, "")
				return
			}
			h.ServeHTTP(w, r)
		case !g.Authorized(r, rules.Cookie):
			w.Header().Set("WWW-Authenticate", `Bearer realm="miniray"`)
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"missing or wrong token: send Authorization: Bearer <token>"}`+"\n")
		default:
			h.ServeHTTP(w, r)
		}
	})
}

// login handles GET /login?token=... and POST /login with a form field token: a
// right token sets the cookie and redirects to the page, a wrong one shows the form
// again with status 401. GET /login alone shows the form.
func (g *Guard) login(w http.ResponseWriter, r *http.Request) {
	var token string
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		token = r.URL.Query().Get("token")
		if token == "" {
			g.form(w, http.StatusOK, "")
			return
		}
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
		if err := r.ParseForm(); err != nil {
			g.form(w, http.StatusBadRequest, "The form could not be read.")
			return
		}
		token = r.PostForm.Get("token")
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusMethodNotAllowed)
		io.WriteString(w, `{"error":"`+r.Method+` is not allowed on `+LoginPath+`"}`+"\n")
		return
	}
	if !g.valid(token) {
		g.form(w, http.StatusUnauthorized, "That token is not right.")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     CookieName,
		Value:    token,
		Path:     "/",
		MaxAge:   int((30 * 24 * time.Hour).Seconds()),
		HttpOnly: true,
		Secure:   g.secure,
		SameSite: http.SameSiteStrictMode,
	})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// logout clears the cookie.
func (g *Guard) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name:     CookieName,
		Path:     "/",
		MaxAge:   -1,
		HttpOnly: true,
		Secure:   g.secure,
		SameSite: http.SameSiteStrictMode,
	})
	http.Redirect(w, r, LoginPath, http.StatusSeeOther)
}

// form shows the login form, with the same security headers as the page.
func (g *Guard) form(w http.ResponseWriter, code int, problem string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(code)
	loginForm.Execute(w, loginData{Problem: problem})
}

// Prefix returns a match for paths under prefix (and prefix itself without its
// trailing slash).
func Prefix(prefix string) func(string) bool {
	return func(p string) bool {
		return strings.HasPrefix(p, prefix) || p == strings.TrimSuffix(prefix, "/")
	}
}

// Paths returns a match for exactly the given paths.
func Paths(paths ...string) func(string) bool {
	return func(p string) bool { return slices.Contains(paths, p) }
}

type loginData struct{ Problem string }

// loginForm has no script and no inline style, as the page's security policy
// allows neither.
var loginForm = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>miniray: log in</title></head>
<body>
<h1>miniray</h1>
<p>This dashboard needs its access token.</p>
{{with .Problem}}<p><strong>{{.}}</strong></p>{{end}}
<form method="post" action="/login">
<label>Token <input type="password" name="token" autocomplete="current-password" autofocus></label>
<button type="submit">Log in</button>
</form>
</body></html>
`))
