package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadBenchCSV(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bench.csv")
	csv := "#RunID,ClientID,MsgCount,MsgBytes,MsgsPerSec,BytesPerSec,DurationSecs\n" +
		"x,P0,400000,60000000,144805,43441500.1,1.381168\n"
	if err := os.WriteFile(path, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := readBenchCSV(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.MsgsPerSec != 144805 || got.Seconds != 1.381168 || got.Msgs != 200000 {
		t.Errorf("got %+v, want 144805 msgs/s over 1.381168s, 200000 msgs", got)
	}
}

func TestReadBenchCSVRefusesZero(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bench.csv")
	csv := "#RunID,MsgsPerSec,DurationSecs\nx,0,0\n"
	if err := os.WriteFile(path, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readBenchCSV(path); err == nil {
		t.Error("got no error for a run of zero messages")
	}
}

func TestUpdateDocsKeepsProse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b.md")
	doc := "# Title\n\nprose before\n\n" + beginMarker + "\nold table\n" + endMarker +
		"\n\nprose after\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := updateDocs(path, "new table\n"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "# Title\n\nprose before\n\n" + beginMarker + "\nnew table\n" + endMarker +
		"\n\nprose after\n"
	if string(b) != want {
		t.Errorf("got\n%s\nwant\n%s", b, want)
	}
}

func TestUpdateDocsNeedsMarkers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b.md")
	if err := os.WriteFile(path, []byte("# no markers\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := updateDocs(path, "table\n"); err == nil ||
		!strings.Contains(err.Error(), "BEGIN GENERATED") {
		t.Errorf("got %v, want an error naming the missing marker", err)
	}
}

func TestFormats(t *testing.T) {
	cases := []struct {
		name string
		got  string
		want string
	}{
		{"count", count(1234567.4), "1,234,567"},
		{"count small", count(999), "999"},
		{"count negative", count(-12345), "-12,345"},
		{"ns", ns(548), "548 ns"},
		{"µs", ns(16836), "16.8 µs"},
		{"ms", ns(2.5e6), "2.50 ms"},
		{"ratio", ratio(0.81234), "0.81"},
		{"small ratio", ratio(0.0012345), "0.0012"},
		{"short", short(1_000_008), "1M"},
		{"short k", short(300_000), "300k"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Errorf("got %q, want %q", c.got, c.want)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	cases := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, c := range cases {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v): got %v, want %v", c.in, got, c.want)
		}
	}
}

func TestVerdictInSmokeRunJudgesNothing(t *testing.T) {
	r := Report{Mode: "smoke", Targets: []Target{{Key: "ingest", Met: false}}}
	if got := r.verdict("ingest"); got != "" {
		t.Errorf("got %q, want no verdict in a smoke run", got)
	}
	r.Mode = "full"
	if got := r.verdict("ingest"); got != "**missed**" {
		t.Errorf("got %q, want **missed**", got)
	}
	if got := r.verdict("unknown"); got != "**missed**" {
		t.Errorf("unknown key: got %q, want **missed**", got)
	}
}
