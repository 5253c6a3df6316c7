package iris

import (
	"fmt"
	"math"
)

// Scaler standardises features to zero mean and unit variance. Gradient descent
// needs it: raw petal lengths span 1 to 7 cm while widths span 0.1 to 2.5, and one
// learning rate cannot suit both scales.
type Scaler struct {
	Mean []float64 `json:"mean"`
	Std  []float64 `json:"std"`
}

// FitScaler computes the mean and population standard deviation of each column.
// Fit it on training rows only, so that nothing about the test rows leaks into
// the model. A constant column is an error: it carries no information and
// cannot be scaled.
func FitScaler(rows [][]float64) (Scaler, error) {
	if len(rows) == 0 {
		return Scaler{}, fmt.Errorf("fit scaler: no rows")
	}
	nf := len(rows[0])
	s := Scaler{Mean: make([]float64, nf), Std: make([]float64, nf)}
	for _, r := range rows {
		for j, v := range r {
			s.Mean[j] += v
		}
	}
	n := float64(len(rows))
	for j := range s.Mean {
		s.Mean[j] /= n
	}
	for _, r := range rows {
		for j, v := range r {
			d := v - s.Mean[j]
			s.Std[j] += d * d
		}
	}
	for j := range s.Std {
		s.Std[j] = math.Sqrt(s.Std[j] / n)
		if s.Std[j] == 0 {
			return Scaler{}, fmt.Errorf("fit scaler: feature %d is constant", j)
		}
	}
	return s, nil
}

// Transform returns the standardised copy of x.
func (s Scaler) Transform(x []float64) []float64 {
	out := make([]float64, len(x))
	for j, v := range x {
		out[j] = (v - s.Mean[j]) / s.Std[j]
	}
	return out
}
