package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/miniray/miniray/examples/internal/cli"
	"github.com/miniray/miniray/examples/internal/iris"
)

type config struct {
	name   string
	lrs    []float64
	epochs []int
	split  iris.Split
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	c := config{split: iris.DefaultSplit()}
	fs := flag.NewFlagSet("tune", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.name, "name", "iris-grid", "task name shown in miniray")
	lrs := fs.String("lrs", "0.01,0.05,0.1,0.5", "comma-separated learning rates to try")
	epochs := fs.String("epochs", "50,150", "comma-separated epoch counts to try")
	fs.Uint64Var(&c.split.Seed, "seed", c.split.Seed, "seed of the train/test split")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, fmt.Errorf("%w: %w", cli.ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("%w: unexpected arguments %q", cli.ErrUsage, fs.Args())
	}

	var err error
	if c.lrs, err = parseList(*lrs, parsePositiveFloat); err != nil {
		return c, fmt.Errorf("%w: --lrs: %w", cli.ErrUsage, err)
	}
	if c.epochs, err = parseList(*epochs, parsePositiveInt); err != nil {
		return c, fmt.Errorf("%w: --epochs: %w", cli.ErrUsage, err)
	}
	return c, nil
}

func parseList[T any](s string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for f := range strings.SplitSeq(s, ",") {
		v, err := parse(strings.TrimSpace(f))
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func parsePositiveFloat(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || !(v > 0) {
		return 0, fmt.Errorf("%q is not a positive number", s)
	}
	return v, nil
}

func parsePositiveInt(s string) (int, error) {
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		return 0, fmt.Errorf("%q is not a positive integer", s)
	}
	return v, nil
}
