// Command fail runs two Iris jobs that go wrong the way real ones do, so that
// failed tasks can be seen in miniray:
//
//   - iris-missing-value trains on an export in which one measurement was
//     written as "NA". Parsing it fails and the job returns the error.
//   - iris-confusion scores a model trained on two species against rows of all
//     three. Its confusion matrix is sized for the model's two species, the
//     first virginica row indexes past it, and the job panics.
//
// tracking records both as task_failed, the panic with its stack, and then
// re-panics. main recovers that panic, prints both failures, waits for the
// events to reach NATS and exits 0, because failing is what this program is
// for; it exits 1 if either job does not fail.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/miniray/miniray/examples/internal/cli"
	"github.com/miniray/miniray/examples/internal/iris"
	"github.com/miniray/miniray/pkg/events"
	"github.com/miniray/miniray/pkg/tracking"
)

// The measurement blanked in the export: row 42 (a setosa), petal_width.
const (
	missingRow    = 42
	missingColumn = 3
)

func main() {
	cli.Main("fail", run)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", cli.ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", cli.ErrUsage, fs.Args())
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(stderr, nil)))
	defer cli.CloseTracking(ctx)

	if err := runMissingValue(ctx, stdout); err != nil {
		return err
	}
	return runConfusion(ctx, stdout)
}

// runMissingValue runs the job that returns an error.
func runMissingValue(ctx context.Context, stdout io.Writer) error {
	// Ids are chosen here, rather than by tracking, so that the summary can name
	// the task to look up.
	id := events.NewTaskID(events.TypeTraining)
	train := tracking.Training(trainOnExport,
		tracking.WithName("iris-missing-value"),
		tracking.WithTaskID(id),
		tracking.WithDescription("train on an export with a measurement written as NA"),
		tracking.WithParams(map[string]any{"epochs": 100, "lr": 0.1}),
	)
	export := withMissingValue(iris.CSV(), missingRow, missingColumn)
	acc, err := train(ctx, export)
	if err == nil {
		return fmt.Errorf("iris-missing-value: got accuracy %.3f, want an error", acc)
	}
	fmt.Fprintf(stdout, "iris-missing-value (task %s) failed as expected: %v\n", id, err)
	return nil
}

// runConfusion runs the job that panics, and recovers the panic that tracking
// passes on after recording it.
func runConfusion(ctx context.Context, stdout io.Writer) error {
	in, err := confusionInput(ctx)
	if err != nil {
		return err
	}
	id := events.NewTaskID(events.TypeInference)
	score := tracking.Inference(confusion,
		tracking.WithName("iris-confusion"),
		tracking.WithTaskID(id),
		tracking.WithDescription("score a two-species model on three species"),
		tracking.WithParams(map[string]any{
			"model_classes": in.model.Classes,
			"rows":          in.rows.Len(),
		}),
	)
	v := recovered(func() { _, err = score(ctx, in) })
	if v == nil {
		return fmt.Errorf("iris-confusion: returned error %v, want a panic", err)
	}
	fmt.Fprintf(stdout, "iris-confusion (task %s) panicked as expected: %v\n", id, v)
	return nil
}

// recovered calls f and returns the value of a panic that escapes it, or nil.
func recovered(f func()) (v any) {
	defer func() { v = recover() }()
	f()
	return nil
}

// trainOnExport is the job that fails: it parses the export before training,
// and the export has a value that is not a number.
func trainOnExport(ctx context.Context, export []byte) (float64, error) {
	data, err := iris.Parse(bytes.NewReader(export))
	if err != nil {
		return 0, fmt.Errorf("read export: %w", err)
	}
	train, test, err := data.Split(iris.DefaultSplit())
	if err != nil {
		return 0, err
	}
	m, err := iris.Train(ctx, train, test, iris.Config{Epochs: 100, LearningRate: 0.1}, nil)
	if err != nil {
		return 0, err
	}
	return m.Accuracy(test), nil
}

// withMissingValue returns csv with one field replaced by "NA", the way many lab
// exports write a value nobody recorded. Line 0 is the header.
func withMissingValue(csv []byte, line, column int) []byte {
	lines := bytes.Split(csv, []byte("\n"))
	fields := bytes.Split(lines[line], []byte(","))
	fields[column] = []byte("NA")
	lines[line] = bytes.Join(fields, []byte(","))
	return bytes.Join(lines, []byte("\n"))
}

// scoring is the input of the panicking job.
type scoring struct {
	model *iris.Model
	rows  *iris.Dataset
}

// confusionInput trains a model on setosa and versicolor only, and returns it
// with the held-out rows of all three species.
func confusionInput(ctx context.Context) (scoring, error) {
	data, err := iris.Load()
	if err != nil {
		return scoring{}, err
	}
	train, test, err := firstClasses(data, 2).Split(iris.DefaultSplit())
	if err != nil {
		return scoring{}, err
	}
	m, err := iris.Train(ctx, train, test, iris.Config{Epochs: 50, LearningRate: 0.1}, nil)
	if err != nil {
		return scoring{}, fmt.Errorf("train two-species model: %w", err)
	}
	_, all, err := data.Split(iris.DefaultSplit())
	if err != nil {
		return scoring{}, err
	}
	return scoring{model: m, rows: all}, nil
}

// firstClasses returns the rows of d whose species is one of its first n.
func firstClasses(d *iris.Dataset, n int) *iris.Dataset {
	out := &iris.Dataset{Classes: d.Classes[:n]}
	for i, l := range d.Labels {
		if l < n {
			out.Features = append(out.Features, d.Features[i])
			out.Labels = append(out.Labels, l)
		}
	}
	return out
}

// confusion is the job that panics. It counts predictions per (true species,
// predicted species) but sizes the matrix by the model's species, which is the
// bug: the rows have a species the model was never trained on.
func confusion(ctx context.Context, in scoring) ([][]int, error) {
	task := tracking.FromContext(ctx)
	k := len(in.model.Classes)
	counts := make([][]int, k)
	for i := range counts {
		counts[i] = make([]int, k)
	}
	correct := 0
	for i, x := range in.rows.Features {
		pred, label := in.model.Predict(x), in.rows.Labels[i]
		counts[label][pred]++
		if pred == label {
			correct++
		}
		task.Progress(i+1, in.rows.Len(), map[string]float64{
			"accuracy": float64(correct) / float64(i+1),
		})
	}
	return counts, nil
}
