// Command infer classifies the held-out Iris rows with a trained model and
// reports the run to miniray as an inference task.
//
//	go run ./examples/train --model-out /tmp/iris.json
//	go run ./examples/infer --model /tmp/iris.json
//
// Without --model it first trains a model of its own, untracked, so that it can
// run alone. Progress is reported after each batch of rows, with the accuracy so
// far; the task's result counts the predictions per species.
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

// fallbackTraining is the model trained when no --model is given: enough epochs
// for about 0.95 held-out accuracy, in a few milliseconds.
var fallbackTraining = iris.Config{Epochs: 200, LearningRate: 0.1}

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
		fmt.Fprintf(os.Stderr, "infer: %v\nrun 'infer -h' for the flags\n", err)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "infer: %v\n", err)
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

	in, source, err := prepare(ctx, cfg)
	if err != nil {
		return err
	}
	infer := tracking.Inference(classify,
		tracking.WithName(cfg.name),
		tracking.WithDescription("classify held-out Iris rows with a softmax model"),
		tracking.WithParams(map[string]any{
			"model":      source,
			"batch_size": cfg.batch,
			"rows":       in.rows.Len(),
			"seed":       in.split.Seed,
		}),
	)
	sum, err := infer(ctx, in)
	if err != nil {
		return fmt.Errorf("%s: %w", cfg.name, err)
	}
	fmt.Fprintf(stdout, "%s (task %s): %d rows, %d correct, accuracy %.3f; predicted %v\n",
		cfg.name, sum.TaskID, sum.Count, sum.Correct, sum.Accuracy, sum.Predicted)
	return nil
}

// prepare returns the model and the rows it never saw, and names where the model
// came from for the task's parameters.
func prepare(ctx context.Context, cfg config) (input, string, error) {
	data, err := iris.Load()
	if err != nil {
		return input{}, "", err
	}
	in := input{batch: cfg.batch, split: cfg.split}
	if cfg.model != "" {
		ck, err := iris.LoadCheckpoint(cfg.model)
		if err != nil {
			return input{}, "", err
		}
		in.split, in.model = ck.Split, ck.Model
	}
	train, test, err := data.Split(in.split)
	if err != nil {
		return input{}, "", err
	}
	in.rows = test
	if in.model != nil {
		return in, cfg.model, nil
	}

	slog.Info("no --model given, training one first", "epochs", fallbackTraining.Epochs)
	in.model, err = iris.Train(ctx, train, test, fallbackTraining, nil)
	if err != nil {
		return input{}, "", fmt.Errorf("train fallback model: %w", err)
	}
	return in, "trained in process", nil
}

// input is what one inference run classifies.
type input struct {
	model *iris.Model
	rows  *iris.Dataset
	batch int
	split iris.Split
}

// summary is what the task records on completion.
type summary struct {
	Count    int     `json:"count"`
	Correct  int     `json:"correct"`
	Accuracy float64 `json:"accuracy"`
	// Predicted and Actual count rows per species.
	Predicted map[string]int `json:"predicted"`
	Actual    map[string]int `json:"actual"`
	TaskID    string         `json:"-"`
}

// classify is the tracked job. It stops between batches when ctx is cancelled.
func classify(ctx context.Context, in input) (summary, error) {
	task := tracking.FromContext(ctx)
	if len(in.model.Classes) != len(in.rows.Classes) {
		return summary{}, fmt.Errorf("model knows %d species, data has %d",
			len(in.model.Classes), len(in.rows.Classes))
	}
	sum := summary{
		Predicted: make(map[string]int),
		Actual:    make(map[string]int),
		TaskID:    task.ID(),
	}
	n := in.rows.Len()
	for start := 0; start < n; start += in.batch {
		if err := ctx.Err(); err != nil {
			return summary{}, fmt.Errorf("stopped after %d of %d rows: %w",
				start, n, context.Cause(ctx))
		}
		end := min(start+in.batch, n)
		for i := start; i < end; i++ {
			pred := in.model.Predict(in.rows.Features[i])
			label := in.rows.Labels[i]
			sum.Predicted[in.model.Classes[pred]]++
			sum.Actual[in.rows.Classes[label]]++
			if pred == label {
				sum.Correct++
			}
		}
		sum.Count = end
		sum.Accuracy = float64(sum.Correct) / float64(sum.Count)
		task.Progress(end, n, map[string]float64{"accuracy": sum.Accuracy})
	}
	return sum, nil
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
