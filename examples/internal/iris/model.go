package iris

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Model is a trained classifier: the scaler fitted on its training rows, and one
// weight vector and bias per class. A class's score is the dot product of its
// weights with the standardised measurements, plus its bias; the softmax of the
// scores gives the class probabilities. Model encodes to JSON as it is.
type Model struct {
	Classes  []string    `json:"classes"`
	Features []string    `json:"features"`
	Scaler   Scaler      `json:"scaler"`
	Weights  [][]float64 `json:"weights"`
	Bias     []float64   `json:"bias"`
}

// newModel returns a model with all weights zero. The loss is convex in the
// weights, so zero is as good a start as any and keeps training deterministic.
func newModel(classes []string, s Scaler) *Model {
	m := &Model{
		Classes:  slices.Clone(classes),
		Features: slices.Clone(FeatureNames),
		Scaler:   s,
		Weights:  make([][]float64, len(classes)),
		Bias:     make([]float64, len(classes)),
	}
	for c := range m.Weights {
		m.Weights[c] = make([]float64, len(FeatureNames))
	}
	return m
}

// Validate checks that a model read from a file has consistent shapes and finite
// numbers, so that prediction cannot index out of range or return NaN.
func (m *Model) Validate() error {
	nf := len(FeatureNames)
	var errs []error
	if len(m.Classes) < 2 {
		errs = append(errs, fmt.Errorf("%d classes, want at least 2", len(m.Classes)))
	}
	if !slices.Equal(m.Features, FeatureNames) {
		errs = append(errs, fmt.Errorf("features %v, want %v", m.Features, FeatureNames))
	}
	if len(m.Scaler.Mean) != nf || len(m.Scaler.Std) != nf {
		errs = append(errs, fmt.Errorf("scaler has %d means and %d deviations, want %d",
			len(m.Scaler.Mean), len(m.Scaler.Std), nf))
	}
	if len(m.Weights) != len(m.Classes) || len(m.Bias) != len(m.Classes) {
		errs = append(errs, fmt.Errorf("%d weight rows and %d biases for %d classes",
			len(m.Weights), len(m.Bias), len(m.Classes)))
	}
	for c, w := range m.Weights {
		if len(w) != nf {
			errs = append(errs, fmt.Errorf("weight row %d has %d values, want %d", c, len(w), nf))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid model: %w", errors.Join(errs...))
	}
	if !allFinite(m.Scaler.Mean, m.Scaler.Std, m.Bias) || !allFinite(m.Weights...) ||
		slices.Contains(m.Scaler.Std, 0) {
		return errors.New("invalid model: a weight or scaler value is not finite or zero")
	}
	return nil
}

func allFinite(vs ...[]float64) bool {
	for _, v := range vs {
		for _, x := range v {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return false
			}
		}
	}
	return true
}

// scores writes each class's score for standardised measurements z into out.
func (m *Model) scores(z, out []float64) {
	for c, w := range m.Weights {
		s := m.Bias[c]
		for j, v := range z {
			s += w[j] * v
		}
		out[c] = s
	}
}

// Probabilities returns the probability of each class for the raw measurements
// x, given in [FeatureNames] order.
func (m *Model) Probabilities(x []float64) []float64 {
	p := make([]float64, len(m.Classes))
	m.scores(m.Scaler.Transform(x), p)
	softmax(p)
	return p
}

// Predict returns the index in m.Classes of the most probable class of the raw
// measurements x, given in [FeatureNames] order.
func (m *Model) Predict(x []float64) int {
	s := make([]float64, len(m.Classes))
	m.scores(m.Scaler.Transform(x), s)
	return argmax(s)
}

// Accuracy returns the share of d's rows that m classifies correctly.
func (m *Model) Accuracy(d *Dataset) float64 {
	if d.Len() == 0 {
		return 0
	}
	correct := 0
	for i, x := range d.Features {
		if m.Predict(x) == d.Labels[i] {
			correct++
		}
	}
	return float64(correct) / float64(d.Len())
}

// softmax turns scores into probabilities in place. Subtracting the largest score
// first keeps exp from overflowing when the weights grow large.
func softmax(s []float64) {
	top := slices.Max(s)
	sum := 0.0
	for i, v := range s {
		s[i] = math.Exp(v - top)
		sum += s[i]
	}
	for i := range s {
		s[i] /= sum
	}
}

// logSumExp returns log(sum(exp(s))) without overflow, for the cross-entropy.
func logSumExp(s []float64) float64 {
	top := slices.Max(s)
	sum := 0.0
	for _, v := range s {
		sum += math.Exp(v - top)
	}
	return top + math.Log(sum)
}

func argmax(s []float64) int {
	best := 0
	for i, v := range s {
		if v > s[best] {
			best = i
		}
	}
	return best
}
