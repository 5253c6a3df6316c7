package iris

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestLoad(t *testing.T) {
	d, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 150 {
		t.Errorf("got %d rows, want 150", d.Len())
	}
	want := []string{"setosa", "versicolor", "virginica"}
	if !slices.Equal(d.Classes, want) {
		t.Errorf("got classes %v, want %v", d.Classes, want)
	}
	counts := make([]int, len(d.Classes))
	for _, l := range d.Labels {
		counts[l]++
	}
	for c, n := range counts {
		if n != 50 {
			t.Errorf("got %d rows of %s, want 50", n, d.Classes[c])
		}
	}
}

// TestLoadKnownStatistics checks the embedded rows against figures that every
// description of Fisher's data gives, to catch a mistyped value.
func TestLoadKnownStatistics(t *testing.T) {
	d, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	wantMean := []float64{5.843, 3.057, 3.758, 1.199}
	for j, name := range FeatureNames {
		if got := columnMean(d, j, -1); math.Abs(got-wantMean[j]) > 0.0005 {
			t.Errorf("got mean %s %.4f, want %.3f", name, got, wantMean[j])
		}
	}

	// Per-species means of petal length, the feature that separates them best.
	wantPetal := []float64{1.462, 4.260, 5.552}
	for c := range d.Classes {
		if got := columnMean(d, 2, c); math.Abs(got-wantPetal[c]) > 0.0005 {
			t.Errorf("got mean petal_length of %s %.4f, want %.3f", d.Classes[c], got, wantPetal[c])
		}
	}
	for i, x := range d.Features {
		if d.Labels[i] == 0 && x[2] >= 2.0 {
			t.Errorf("row %d: setosa petal_length %v, want < 2.0", i+1, x[2])
		}
	}
}

// columnMean returns the mean of column j over the rows of class c, or of all
// rows when c is -1.
func columnMean(d *Dataset, j, c int) float64 {
	sum, n := 0.0, 0
	for i, x := range d.Features {
		if c < 0 || d.Labels[i] == c {
			sum += x[j]
			n++
		}
	}
	return sum / float64(n)
}

func TestParseErrors(t *testing.T) {
	const header = "sepal_length,sepal_width,petal_length,petal_width,species\n"
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"empty", "", "read header"},
		{"wrong header", "a,b,c,d,e\n5.1,3.5,1.4,0.2,setosa\n", "header"},
		{"no rows", header, "no rows"},
		{"missing value", header + "5.1,3.5,1.4,NA,setosa\n", "line 2: petal_width"},
		{"not finite", header + "5.1,NaN,1.4,0.2,setosa\n", "sepal_width"},
		{"short row", header + "5.1,3.5,1.4,setosa\n", "wrong number of fields"},
		{"no species", header + "5.1,3.5,1.4,0.2,\n", "species: empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.in))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("got error %v, want %v", err, ErrMalformed)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestSplit(t *testing.T) {
	d, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	train, test, err := d.Split(DefaultSplit())
	if err != nil {
		t.Fatal(err)
	}
	if train.Len() != 105 || test.Len() != 45 {
		t.Fatalf("got %d training and %d test rows, want 105 and 45", train.Len(), test.Len())
	}
	perClass := make([]int, len(d.Classes))
	for _, l := range test.Labels {
		perClass[l]++
	}
	if !slices.Equal(perClass, []int{15, 15, 15}) {
		t.Errorf("got test rows per class %v, want 15 each", perClass)
	}

	// Every row lands on exactly one side: the rows share their slices with d.
	seen := make(map[*float64]int)
	for _, part := range []*Dataset{train, test} {
		for _, x := range part.Features {
			seen[&x[0]]++
		}
	}
	if len(seen) != d.Len() {
		t.Errorf("got %d distinct rows, want %d", len(seen), d.Len())
	}

	_, again, _ := d.Split(DefaultSplit())
	if !sameRows(test, again) {
		t.Error("same seed gave a different test set")
	}
	_, other, _ := d.Split(Split{Seed: 2, TestFraction: 0.3})
	if sameRows(test, other) {
		t.Error("seeds 1 and 2 gave the same test set")
	}
}

func sameRows(a, b *Dataset) bool {
	if a.Len() != b.Len() {
		return false
	}
	for i := range a.Features {
		if &a.Features[i][0] != &b.Features[i][0] {
			return false
		}
	}
	return true
}

func TestSplitRejectsFraction(t *testing.T) {
	d, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []float64{0, 1, -0.5, math.NaN()} {
		if _, _, err := d.Split(Split{Seed: 1, TestFraction: f}); err == nil {
			t.Errorf("test fraction %v: got no error, want one", f)
		}
	}
}
