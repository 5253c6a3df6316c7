package iris

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
)

func splitData(t testing.TB) (train, test *Dataset) {
	t.Helper()
	d, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	train, test, err = d.Split(DefaultSplit())
	if err != nil {
		t.Fatal(err)
	}
	return train, test
}

// TestTrain trains on several splits, so that passing does not hang on one lucky
// choice of held-out rows.
func TestTrain(t *testing.T) {
	d, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	for seed := uint64(1); seed <= 5; seed++ {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			train, test, err := d.Split(Split{Seed: seed, TestFraction: 0.3})
			if err != nil {
				t.Fatal(err)
			}
			checkTraining(t, train, test)
		})
	}
}

func checkTraining(t *testing.T, train, test *Dataset) {
	t.Helper()
	var stats []EpochStats
	m, err := Train(t.Context(), train, test, Config{Epochs: 200, LearningRate: 0.1},
		func(s EpochStats) { stats = append(stats, s) })
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != 200 {
		t.Fatalf("got %d epoch reports, want 200", len(stats))
	}
	for i, s := range stats {
		if s.Epoch != i+1 {
			t.Fatalf("report %d: got epoch %d, want %d", i, s.Epoch, i+1)
		}
		if i > 0 && s.Loss > stats[i-1].Loss {
			t.Errorf("epoch %d: loss rose from %.6f to %.6f", s.Epoch, stats[i-1].Loss, s.Loss)
		}
	}
	first, last := stats[0], stats[len(stats)-1]
	if last.Loss > first.Loss/4 {
		t.Errorf("got loss %.4f after 200 epochs from %.4f, want a quarter or less",
			last.Loss, first.Loss)
	}
	if last.TestAccuracy < 0.9 {
		t.Errorf("got test accuracy %.3f, want >= 0.9", last.TestAccuracy)
	}
	if got := m.Accuracy(test); got != last.TestAccuracy {
		t.Errorf("got Accuracy %.4f, want the last epoch's %.4f", got, last.TestAccuracy)
	}
	t.Logf("loss %.4f -> %.4f, train accuracy %.3f, test accuracy %.3f",
		first.Loss, last.Loss, last.TrainAccuracy, last.TestAccuracy)
}

func TestTrainDeterministic(t *testing.T) {
	train, test := splitData(t)
	cfg := Config{Epochs: 30, LearningRate: 0.2}
	a, err := Train(t.Context(), train, test, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Train(t.Context(), train, test, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for c := range a.Weights {
		for j := range a.Weights[c] {
			if a.Weights[c][j] != b.Weights[c][j] {
				t.Fatalf("weight [%d][%d]: got %v and %v from the same settings",
					c, j, a.Weights[c][j], b.Weights[c][j])
			}
		}
	}
}

func TestTrainCancelled(t *testing.T) {
	train, test := splitData(t)
	ctx, cancel := context.WithCancel(t.Context())
	epochs := 0
	_, err := Train(ctx, train, test, Config{Epochs: 100, LearningRate: 0.1}, func(s EpochStats) {
		epochs++
		if s.Epoch == 3 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got error %v, want %v", err, context.Canceled)
	}
	if epochs != 3 {
		t.Errorf("got %d epochs, want 3", epochs)
	}
}

func TestTrainRejectsConfig(t *testing.T) {
	train, test := splitData(t)
	for _, cfg := range []Config{
		{Epochs: 0, LearningRate: 0.1},
		{Epochs: 10, LearningRate: 0},
		{Epochs: 10, LearningRate: -1},
	} {
		if _, err := Train(t.Context(), train, test, cfg, nil); err == nil {
			t.Errorf("%+v: got no error, want one", cfg)
		}
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	train, test := splitData(t)
	m, err := Train(t.Context(), train, test, Config{Epochs: 50, LearningRate: 0.1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "model.json")
	if err := SaveCheckpoint(path, Checkpoint{Split: DefaultSplit(), Model: m}); err != nil {
		t.Fatal(err)
	}
	c, err := LoadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Split != DefaultSplit() {
		t.Errorf("got split %+v, want %+v", c.Split, DefaultSplit())
	}
	for i, x := range test.Features {
		if got, want := c.Model.Predict(x), m.Predict(x); got != want {
			t.Errorf("row %d: loaded model predicts %d, trained one %d", i, got, want)
		}
	}
}

func TestLoadCheckpointRejectsBadModel(t *testing.T) {
	train, test := splitData(t)
	m, err := Train(t.Context(), train, test, Config{Epochs: 5, LearningRate: 0.1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.Weights[1] = m.Weights[1][:2]
	path := filepath.Join(t.TempDir(), "model.json")
	if err := SaveCheckpoint(path, Checkpoint{Split: DefaultSplit(), Model: m}); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCheckpoint(path); err == nil {
		t.Error("got no error for a model with a short weight row, want one")
	}
}
