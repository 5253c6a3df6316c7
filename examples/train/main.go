// Command train fits a softmax classifier to Fisher's Iris data and reports every
// epoch to miniray as a training task.
//
//	MINIRAY_NATS_URL=nats://127.0.0.1:4222 go run ./examples/train --epochs 200
//
// The task records its parameters when it starts, the loss and the training and
// test accuracies after each epoch, and a summary of the model when it ends.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/miniray/miniray/examples/internal/cli"
	"github.com/miniray/miniray/examples/internal/iris"
	"github.com/miniray/miniray/pkg/tracking"
)

func main() {
	cli.Main("train", run)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(stderr, nil)))
	defer cli.CloseTracking(ctx)

	data, err := iris.Load()
	if err != nil {
		return err
	}
	train := tracking.Training(trainModel,
		tracking.WithName(cfg.name),
		tracking.WithDescription("softmax regression on Fisher's Iris data"),
		tracking.WithParams(map[string]any{
			"epochs":        cfg.epochs,
			"lr":            cfg.lr,
			"seed":          cfg.split.Seed,
			"test_fraction": cfg.split.TestFraction,
			"model_out":     cfg.modelOut,
		}),
	)
	res, err := train(ctx, job{cfg: cfg, data: data})
	if err != nil {
		return fmt.Errorf("%s: %w", cfg.name, err)
	}
	fmt.Fprintf(stdout, "%s (task %s): %d epochs, loss %.4f, "+
		"train accuracy %.3f, test accuracy %.3f on %d held-out rows\n",
		cfg.name, res.TaskID, res.Epochs, res.Loss, res.TrainAccuracy, res.TestAccuracy,
		res.TestRows)
	if res.ModelPath != "" {
		fmt.Fprintf(stdout, "model written to %s\n", res.ModelPath)
	}
	return nil
}

// job is the input of one training run.
type job struct {
	cfg  config
	data *iris.Dataset
}

// result is what the task records on completion: the last epoch's numbers.
type result struct {
	Epochs        int     `json:"epochs"`
	Loss          float64 `json:"loss"`
	TrainAccuracy float64 `json:"train_accuracy"`
	TestAccuracy  float64 `json:"test_accuracy"`
	TrainRows     int     `json:"train_rows"`
	TestRows      int     `json:"test_rows"`
	ModelPath     string  `json:"model_path,omitempty"`
	TaskID        string  `json:"-"`
}

// trainModel is the tracked job: it reports each epoch as progress of the task
// that ctx carries.
func trainModel(ctx context.Context, j job) (result, error) {
	task := tracking.FromContext(ctx)
	trainSet, testSet, err := j.data.Split(j.cfg.split)
	if err != nil {
		return result{}, err
	}
	res := result{TrainRows: trainSet.Len(), TestRows: testSet.Len(), TaskID: task.ID()}

	cfg := iris.Config{Epochs: j.cfg.epochs, LearningRate: j.cfg.lr}
	m, err := iris.Train(ctx, trainSet, testSet, cfg, func(s iris.EpochStats) {
		task.Progress(s.Epoch, cfg.Epochs, map[string]float64{
			"loss":          s.Loss,
			"accuracy":      s.TrainAccuracy,
			"test_accuracy": s.TestAccuracy,
		})
		res.Epochs, res.Loss = s.Epoch, s.Loss
		res.TrainAccuracy, res.TestAccuracy = s.TrainAccuracy, s.TestAccuracy
	})
	if err != nil {
		return result{}, err
	}
	slog.Info("model trained", "epochs", res.Epochs, "test_accuracy", res.TestAccuracy)

	if j.cfg.modelOut != "" {
		ck := iris.Checkpoint{Split: j.cfg.split, Model: m}
		if err := iris.SaveCheckpoint(j.cfg.modelOut, ck); err != nil {
			return result{}, err
		}
		res.ModelPath = j.cfg.modelOut
	}
	return res, nil
}
