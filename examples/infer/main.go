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
	"fmt"
	"io"
	"log/slog"

	"github.com/miniray/miniray/examples/internal/cli"
	"github.com/miniray/miniray/examples/internal/iris"
	"github.com/miniray/miniray/pkg/tracking"
)

// fallbackTraining is the model trained when no --model is given: enough epochs
// for about 0.95 held-out accuracy, in a few milliseconds.
var fallbackTraining = iris.Config{Epochs: 200, LearningRate: 0.1}

func main() {
	cli.Main("infer", run)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(stderr, nil)))
	defer cli.CloseTracking(ctx)

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
