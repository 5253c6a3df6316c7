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
	name     string
	epochs   int
	lr       float64
	split    iris.Split
	modelOut string
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	c := config{split: iris.DefaultSplit()}
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.name, "name", "iris-softmax", "task name shown in miniray")
	fs.IntVar(&c.epochs, "epochs", 100, "full passes over the training rows")
	fs.Float64Var(&c.lr, "lr", 0.1, "learning rate")
	fs.Uint64Var(&c.split.Seed, "seed", c.split.Seed, "seed of the train/test split")
	fs.Float64Var(&c.split.TestFraction, "test-fraction", c.split.TestFraction,
		"share of each species held out for testing")
	fs.StringVar(&c.modelOut, "model-out", "", "write the trained model to this JSON file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, fmt.Errorf("%w: %w", cli.ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("%w: unexpected arguments %q", cli.ErrUsage, fs.Args())
	}
	if c.epochs < 1 || !(c.lr > 0) {
		return c, fmt.Errorf("%w: --epochs must be at least 1 and --lr positive", cli.ErrUsage)
	}
	return c, nil
}
