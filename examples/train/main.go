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
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/miniray/miniray/examples/internal/iris"
	"github.com/miniray/miniray/pkg/tracking"
)

// closeTimeout bounds the wait for NATS to acknowledge the last events. It keeps
// a program whose NATS is down from hanging; those events are then lost.
const closeTimeout = 10 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal a second one should kill the program at once, even
	// while it waits for NATS.
	go func() { <-ctx.Done(); stop() }()

	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		fmt.Fprintf(os.Stderr, "train: %v\nrun 'train -h' for the flags\n", err)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "train: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(stderr, nil)))
	defer closeTracking(ctx)

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

// closeTracking waits, for at most closeTimeout, until NATS has acknowledged every
// event. It does not use ctx's cancellation: after a signal, the events still
// queued include the one that says the task was cancelled.
func closeTracking(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer cancel()
	if err := tracking.Close(ctx); err != nil {
		slog.Warn("tracking events not all delivered", "error", err)
	}
}
