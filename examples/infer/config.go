package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/miniray/miniray/examples/internal/cli"
	"github.com/miniray/miniray/examples/internal/iris"
)

type config struct {
	name  string
	model string
	batch int
	// split chooses the held-out rows when no model file is given; a model file
	// brings the split it was trained on.
	split iris.Split
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	c := config{split: iris.DefaultSplit()}
	fs := flag.NewFlagSet("infer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.name, "name", "iris-infer", "task name shown in miniray")
	fs.StringVar(&c.model, "model", "",
		"model JSON written by train --model-out; without it a model is trained first")
	fs.IntVar(&c.batch, "batch", 5, "rows per batch; progress is reported after each")
	fs.Uint64Var(&c.split.Seed, "seed", c.split.Seed,
		"seed of the train/test split, when no --model is given")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, fmt.Errorf("%w: %w", cli.ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("%w: unexpected arguments %q", cli.ErrUsage, fs.Args())
	}
	if c.batch < 1 {
		return c, fmt.Errorf("%w: --batch must be at least 1", cli.ErrUsage)
	}
	return c, nil
}
