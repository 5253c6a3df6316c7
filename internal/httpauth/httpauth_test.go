package httpauth

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

const testToken = "0123456789abcdef-token"

// server serves "ok" on every path behind a guard with the dashboard's rules.
func server(t *testing.T, g *Guard) *httptest.Server {
	t.Helper()
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})
	srv := httptest.NewServer(g.Wrap(ok, Rules{
		Open:   Paths("/healthz"),
		Page:   func(p string) bool { return !strings.HasPrefix(p, "/api/") },
		Cookie: true,
		Login:  true,
	}))
	t.Cleanup(srv.Close)
	return srv
}

// noRedirect is a client that shows redirects instead of following them.
func noRedirect() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

func do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := noRedirect().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func TestGuard(t *testing.T) {
	srv := server(t, New(testToken, false))
	cases := []struct {
		name     string
		path     string
		header   string
		cookie   string
		want     int
		wantBody string
	}{
		{name: "open path", path: "/healthz", want: 200, wantBody: "ok"},
		{name: "api without token", path: "/api/tasks", want: 401, wantBody: `"error"`},
		{name: "api with bearer", path: "/api/tasks", header: "Bearer " + testToken, want: 200},
		{name: "lower-case scheme", path: "/api/tasks", header: "bearer " + testToken, want: 200},
		{name: "api with wrong bearer", path: "/api/tasks", header: "Bearer " + testToken + "x",
			want: 401},
		{name: "basic scheme", path: "/api/tasks", header: "Basic " + testToken, want: 401},
		{name: "api with cookie", path: "/api/stream", cookie: testToken, want: 200},
		{name: "wrong cookie", path: "/api/stream", cookie: "nope", want: 401},
		{name: "page without token", path: "/", want: 401, wantBody: "<form"},
		{name: "page with cookie", path: "/task.html", cookie: testToken, want: 200},
		{name: "page with bearer", path: "/", header: "Bearer " + testToken, want: 200},
		{name: "login form", path: "/login", want: 200, wantBody: `name="token"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, srv.URL+c.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if c.header != "" {
				req.Header.Set("Authorization", c.header)
			}
			if c.cookie != "" {
				req.AddCookie(&http.Cookie{Name: CookieName, Value: c.cookie})
			}
			resp, body := do(t, req)
			if resp.StatusCode != c.want {
				t.Fatalf("got %d %q, want %d", resp.StatusCode, body, c.want)
			}
			if !strings.Contains(body, c.wantBody) {
				t.Errorf("got body %q, want it to hold %q", body, c.wantBody)
			}
			if c.want == 401 && strings.HasPrefix(c.path, "/api/") &&
				resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}

func TestLoginSetsCookie(t *testing.T) {
	srv := server(t, New(testToken, true))
	login := func(t *testing.T, req *http.Request) *http.Response {
		t.Helper()
		resp, body := do(t, req)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
			t.Fatalf("got %d to %q (%s), want 303 to /", resp.StatusCode,
				resp.Header.Get("Location"), body)
		}
		return resp
	}
	check := func(t *testing.T, resp *http.Response) {
		t.Helper()
		cookies := resp.Cookies()
		if len(cookies) != 1 {
			t.Fatalf("got cookies %v, want one", cookies)
		}
		c := cookies[0]
		if c.Name != CookieName || c.Value != testToken || !c.HttpOnly || !c.Secure ||
			c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
			t.Fatalf("got cookie %+v, want HttpOnly, Secure, SameSite=Strict on /", c)
		}
	}

	t.Run("form", func(t *testing.T) {
		form := url.Values{"token": {testToken}}.Encode()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+LoginPath, strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		check(t, login(t, req))
	})
	t.Run("query", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet,
			srv.URL+LoginPath+"?token="+url.QueryEscape(testToken), nil)
		check(t, login(t, req))
	})
	t.Run("wrong token", func(t *testing.T) {
		form := url.Values{"token": {"not-the-token-at-all"}}.Encode()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+LoginPath, strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, body := do(t, req)
		if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 ||
			!strings.Contains(body, "not right") {
			t.Fatalf("got %d, cookies %v, body %q; want 401, none, the form again",
				resp.StatusCode, resp.Cookies(), body)
		}
	})
	t.Run("logout", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+LogoutPath, nil)
		resp, _ := do(t, req)
		if cs := resp.Cookies(); len(cs) != 1 || cs[0].MaxAge >= 0 {
			t.Fatalf("got cookies %v, want one that expires", cs)
		}
	})
	t.Run("other method", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodDelete, srv.URL+LoginPath, nil)
		resp, body := do(t, req)
		if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(body, "error") {
			t.Fatalf("got %d %q, want 405 with a JSON error", resp.StatusCode, body)
		}
	})
}

func TestNilGuardLetsAllThrough(t *testing.T) {
	if g := New("", false); g != nil {
		t.Fatalf("got a guard for an empty token")
	}
	srv := server(t, nil)
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/tasks", nil)
	if resp, body := do(t, req); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("got %d %q, want 200 ok", resp.StatusCode, body)
	}
}
