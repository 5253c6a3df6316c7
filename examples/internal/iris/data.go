package iris

import (
	"bytes"
	_ "embed"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
)

// irisCSV is Fisher's Iris data (R. A. Fisher, "The use of multiple measurements
// in taxonomic problems", Annals of Eugenics 7(2), 1936) as published in the UCI
// Machine Learning Repository's Iris data set (donated by Michael Marshall, 1988).
// Rows 35 and 38 carry the corrections that the repository's notes give for its
// iris.data file, which restore Fisher's values; species names drop the "Iris-"
// prefix.
//
//go:embed iris.csv
var irisCSV []byte

// FeatureNames lists the four measurements, in centimetres, in column order.
var FeatureNames = []string{"sepal_length", "sepal_width", "petal_length", "petal_width"}

// labelColumn is the header of the last column, the species.
const labelColumn = "species"

// ErrMalformed is returned by [Parse] when the data is not a table of the four
// measurements and a species.
var ErrMalformed = errors.New("malformed iris data")

// Dataset is a table of flowers: their measurements and their species.
type Dataset struct {
	// Classes names the species; a label is an index into it.
	Classes []string
	// Features holds one row per flower, in [FeatureNames] order.
	Features [][]float64
	// Labels holds each flower's species as an index into Classes.
	Labels []int
}

// Len returns the number of rows.
func (d *Dataset) Len() int { return len(d.Labels) }

// CSV returns a copy of the embedded data set as CSV text, for jobs that take
// their input as a file.
func CSV() []byte { return bytes.Clone(irisCSV) }

// Load returns the embedded data set: 150 flowers, 50 of each of three species.
func Load() (*Dataset, error) {
	d, err := Parse(bytes.NewReader(irisCSV))
	if err != nil {
		return nil, fmt.Errorf("load embedded iris data: %w", err)
	}
	return d, nil
}

// Parse reads CSV with the header of the embedded file. Species are numbered in
// the order they first appear. Every measurement must be a finite number.
func Parse(r io.Reader) (*Dataset, error) {
	cr := csv.NewReader(r)
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%w: read header: %w", ErrMalformed, err)
	}
	want := append(slices.Clone(FeatureNames), labelColumn)
	if !slices.Equal(header, want) {
		return nil, fmt.Errorf("%w: header %v, want %v", ErrMalformed, header, want)
	}

	d := &Dataset{}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		line, _ := cr.FieldPos(0)
		row, err := parseRow(rec)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrMalformed, line, err)
		}
		d.Features = append(d.Features, row)
		d.Labels = append(d.Labels, d.classIndex(rec[len(FeatureNames)]))
	}
	if d.Len() == 0 {
		return nil, fmt.Errorf("%w: no rows", ErrMalformed)
	}
	return d, nil
}

func parseRow(rec []string) ([]float64, error) {
	row := make([]float64, len(FeatureNames))
	for j, name := range FeatureNames {
		v, err := strconv.ParseFloat(rec[j], 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%s: %q is not finite", name, rec[j])
		}
		row[j] = v
	}
	if rec[len(FeatureNames)] == "" {
		return nil, fmt.Errorf("%s: empty", labelColumn)
	}
	return row, nil
}

// classIndex returns the label of a species, adding it when it is new.
func (d *Dataset) classIndex(name string) int {
	if i := slices.Index(d.Classes, name); i >= 0 {
		return i
	}
	d.Classes = append(d.Classes, name)
	return len(d.Classes) - 1
}

// rows returns a data set of the given rows of d, sharing its feature slices.
func (d *Dataset) rows(idx []int) *Dataset {
	out := &Dataset{
		Classes:  d.Classes,
		Features: make([][]float64, len(idx)),
		Labels:   make([]int, len(idx)),
	}
	for i, k := range idx {
		out.Features[i] = d.Features[k]
		out.Labels[i] = d.Labels[k]
	}
	return out
}
