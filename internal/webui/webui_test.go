package webui

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// readStatic returns the content of one of the page's files.
func readStatic(tb testing.TB, name string) string {
	tb.Helper()
	b, err := fs.ReadFile(FS(), name)
	if err != nil {
		tb.Fatalf("read %s: %v", name, err)
	}
	return string(b)
}

func TestFSHasPageFiles(t *testing.T) {
	names := []string{"index.html", "app.js", "charts.js", "list.js", "task.js", "style.css",
		"favicon.svg",
		"vendor/uPlot.iife.min.js", "vendor/uPlot.min.css", "vendor/uPlot.LICENSE"}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			if got := readStatic(t, name); strings.TrimSpace(got) == "" {
				t.Errorf("got an empty %s, want content", name)
			}
		})
	}
}

var (
	// tagRe matches one start tag; the page's markup has no '>' inside attributes.
	tagRe = regexp.MustCompile(`<[a-zA-Z][^>]*>`)

	// handlerRe matches an inline event handler attribute such as onclick=.
	handlerRe = regexp.MustCompile(`(?i)\son[a-z]+\s*=`)

	// styleAttrRe matches a style attribute, which the CSP would block.
	styleAttrRe = regexp.MustCompile(`(?i)\sstyle\s*=`)

	// scriptRe matches a script element with its body.
	scriptRe = regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script>`)

	// urlRe matches an absolute http or https URL, also protocol-relative ones.
	urlRe = regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
)

func TestIndexHTMLIsSelfContained(t *testing.T) {
	html := readStatic(t, "index.html")

	if m := urlRe.FindString(html); m != "" {
		t.Errorf("got external URL %q in index.html, want none", m)
	}
	for _, tag := range tagRe.FindAllString(html, -1) {
		if handlerRe.MatchString(tag) {
			t.Errorf("got inline event handler in %s, want none", tag)
		}
		if styleAttrRe.MatchString(tag) {
			t.Errorf("got style attribute in %s, want none", tag)
		}
	}

	// The chart library first, then the page's own scripts that use it; defer runs
	// them in this order once the document is parsed.
	want := []string{"vendor/uPlot.iife.min.js", "charts.js", "app.js", "list.js", "task.js"}
	scripts := scriptRe.FindAllStringSubmatch(html, -1)
	if len(scripts) != len(want) {
		t.Fatalf("got %d script elements, want %d", len(scripts), len(want))
	}
	for i, sc := range scripts {
		attrs, body := sc[1], sc[2]
		if strings.TrimSpace(body) != "" {
			t.Errorf("got inline script body %q, want none", body)
		}
		if !strings.Contains(attrs, `src="`+want[i]+`"`) || !strings.Contains(attrs, "defer") {
			t.Errorf(`got script attributes %q, want src=%q and defer`, attrs, want[i])
		}
	}
	if strings.Contains(strings.ToLower(html), "<style") {
		t.Error(`got a <style> element, want styles only in style.css`)
	}
}

// ownScripts are the page's scripts, as opposed to the vendored library.
var ownScripts = []string{"app.js", "charts.js", "list.js", "task.js"}

func TestScriptUsesNoHTMLSinks(t *testing.T) {
	sinks := []string{
		"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
		"DOMParser", "createContextualFragment", "eval(", "new Function",
		"setAttribute(\"style", ".cssText",
	}
	for _, name := range ownScripts {
		js := readStatic(t, name)
		for _, s := range sinks {
			if strings.Contains(js, s) {
				t.Errorf("got %q in %s, want job data set only as text", s, name)
			}
		}
	}
}

func TestAssetsLoadNothingExternal(t *testing.T) {
	for _, name := range append(ownScripts, "style.css", "vendor/uPlot.min.css") {
		if m := urlRe.FindString(readStatic(t, name)); m != "" {
			t.Errorf("got external URL %q in %s, want none", m, name)
		}
	}
	// The library names its home in a comment; it must not load anything.
	lib := readStatic(t, "vendor/uPlot.iife.min.js")
	for _, s := range []string{"fetch(", "XMLHttpRequest", "importScripts", "WebSocket"} {
		if strings.Contains(lib, s) {
			t.Errorf("got %q in the vendored uPlot, want a library that loads nothing", s)
		}
	}
	if strings.Contains(readStatic(t, "style.css"), "@import") {
		t.Error("got @import in style.css, want one style sheet")
	}
}

// TestScriptFindsItsElements catches a renamed id in one file but not the other:
// byId would return null and the page would stop at the first use.
func TestScriptFindsItsElements(t *testing.T) {
	html := readStatic(t, "index.html")
	var js string
	for _, name := range ownScripts {
		js += readStatic(t, name)
	}
	ids := map[string]bool{}
	for _, m := range regexp.MustCompile(`\sid="([^"]+)"`).FindAllStringSubmatch(html, -1) {
		if ids[m[1]] {
			t.Errorf("got id %q twice in index.html, want unique ids", m[1])
		}
		ids[m[1]] = true
	}
	used := regexp.MustCompile(`byId\("([^"]+)"\)`).FindAllStringSubmatch(js, -1)
	if len(used) == 0 {
		t.Fatal(`got no byId("...") calls in app.js, want some`)
	}
	for _, m := range used {
		if !ids[m[1]] {
			t.Errorf("app.js looks up id %q, which index.html does not have", m[1])
		}
	}
}

func TestServedByFileServer(t *testing.T) {
	srv := httptest.NewServer(http.FileServer(http.FS(FS())))
	t.Cleanup(srv.Close)

	tests := []struct {
		path, wantType, wantBody string
	}{
		{"/", "text/html", "<title>miniray</title>"},
		{"/app.js", "javascript", `"use strict"`},
		{"/style.css", "text/css", "prefers-color-scheme: dark"},
		{"/favicon.svg", "image/svg+xml", "<svg"},
		{"/charts.js", "javascript", "uPlot"},
		{"/vendor/uPlot.iife.min.js", "javascript", "var uPlot="},
		{"/vendor/uPlot.min.css", "text/css", ".uplot"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			res, err := srv.Client().Get(srv.URL + tt.path)
			if err != nil {
				t.Fatalf("get: %v", err)
			}
			defer res.Body.Close()
			body, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatalf("read body: %v", err)
			}
			if res.StatusCode != http.StatusOK {
				t.Fatalf("got status %d, want 200", res.StatusCode)
			}
			if ct := res.Header.Get("Content-Type"); !strings.Contains(ct, tt.wantType) {
				t.Errorf("got Content-Type %q, want one with %q", ct, tt.wantType)
			}
			if !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("got a body without %q", tt.wantBody)
			}
		})
	}
}
