package webui

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// webDir is the npm package that pins the chart library; scripts/web.sh installs it
// there and copies it into static/vendor.
const webDir = "../../web"

// vendored maps each vendored file to the file of the npm package it copies.
var vendored = map[string]string{
	"vendor/uPlot.iife.min.js": "dist/uPlot.iife.min.js",
	"vendor/uPlot.min.css":     "dist/uPlot.min.css",
	"vendor/uPlot.LICENSE":     "LICENSE",
}

// lockedVersion returns the version of uplot that web/package-lock.json pins.
func lockedVersion(tb testing.TB) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(webDir, "package-lock.json"))
	if err != nil {
		tb.Fatalf("read lock file: %v", err)
	}
	var lock struct {
		Packages map[string]struct {
			Version   string `json:"version"`
			Integrity string `json:"integrity"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		tb.Fatalf("parse lock file: %v", err)
	}
	pkg, ok := lock.Packages["node_modules/uplot"]
	if !ok || pkg.Version == "" || pkg.Integrity == "" {
		tb.Fatalf("got lock entry %+v for uplot, want a version and an integrity hash", pkg)
	}
	return pkg.Version
}

// TestVendoredChartLibraryMatchesLock checks that the committed copy of uPlot is
// the version the lock file pins, with its license beside it.
func TestVendoredChartLibraryMatchesLock(t *testing.T) {
	want := lockedVersion(t)
	js := readStatic(t, "vendor/uPlot.iife.min.js")
	m := regexp.MustCompile(`^/\*! \S+ \(v(\d+\.\d+\.\d+)\) \*/`).FindStringSubmatch(js)
	if m == nil {
		t.Fatalf("got a vendored uPlot without its version header: %.80q", js)
	}
	if m[1] != want {
		t.Errorf("got vendored uPlot %s, want %s as web/package-lock.json pins; "+
			"run scripts/web.sh", m[1], want)
	}
	if lic := readStatic(t, "vendor/uPlot.LICENSE"); !bytes.Contains([]byte(lic), []byte("MIT")) {
		t.Errorf("got a license file without MIT in it: %.80q", lic)
	}
}

// TestVendoredFilesAreTheInstalledOnes compares the copies byte for byte with the
// npm package when it is installed (after scripts/web.sh); a fresh clone has no
// node_modules and skips this.
func TestVendoredFilesAreTheInstalledOnes(t *testing.T) {
	pkgDir := filepath.Join(webDir, "node_modules", "uplot")
	if _, err := os.Stat(pkgDir); errors.Is(err, fs.ErrNotExist) {
		t.Skip("web/node_modules not installed; scripts/web.sh installs it")
	}
	for vendor, orig := range vendored {
		want, err := os.ReadFile(filepath.Join(pkgDir, orig))
		if err != nil {
			t.Fatalf("read installed %s: %v", orig, err)
		}
		if got := readStatic(t, vendor); got != string(want) {
			t.Errorf("got %s different from web/node_modules/uplot/%s; run scripts/web.sh",
				vendor, orig)
		}
	}
}
