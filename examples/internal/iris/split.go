package iris

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Split says which rows are held out for testing.
type Split struct {
	// Seed drives the shuffle; the same seed always holds out the same rows.
	Seed uint64 `json:"seed"`
	// TestFraction is the share of each species held out, between 0 and 1.
	TestFraction float64 `json:"test_fraction"`
}

// DefaultSplit holds out 30% of each species (15 flowers) with seed 1.
func DefaultSplit() Split {
	return Split{Seed: 1, TestFraction: 0.3}
}

// splitStream is the second half of the PCG seed. It is fixed so that a split
// depends on Split.Seed alone; PCG's output is specified, so a seed gives the same
// rows on every platform and Go release.
const splitStream = 0x1715

// Split divides d into training and test rows. It holds out the same share of
// every species, so that a small test set is not skewed towards one of them, and
// shuffles both sets so that a batch of rows mixes species.
func (d *Dataset) Split(s Split) (train, test *Dataset, err error) {
	if !(s.TestFraction > 0 && s.TestFraction < 1) {
		return nil, nil, fmt.Errorf("test fraction %v: must be between 0 and 1", s.TestFraction)
	}
	rng := rand.New(rand.NewPCG(s.Seed, splitStream))

	var trainIdx, testIdx []int
	for class := range d.Classes {
		var idx []int
		for i, l := range d.Labels {
			if l == class {
				idx = append(idx, i)
			}
		}
		shuffle(rng, idx)
		n := int(math.Round(float64(len(idx)) * s.TestFraction))
		testIdx = append(testIdx, idx[:n]...)
		trainIdx = append(trainIdx, idx[n:]...)
	}
	if len(trainIdx) == 0 || len(testIdx) == 0 {
		return nil, nil, fmt.Errorf("split %d rows at %v: a side is empty", d.Len(), s.TestFraction)
	}

	shuffle(rng, trainIdx)
	shuffle(rng, testIdx)
	return d.rows(trainIdx), d.rows(testIdx), nil
}

func shuffle(rng *rand.Rand, idx []int) {
	rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
}
