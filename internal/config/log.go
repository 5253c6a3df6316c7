package config

import (
	"fmt"
	"io"
	"log/slog"
)

// LogSettings are the logging settings every program has.
var LogSettings = []Setting{
	{Key: "log_level", Default: "info", Usage: "log level: debug, info, warn or error"},
	{Key: "log_format", Default: "text", Usage: "log format: text or json"},
}

// Logger reads the log settings and builds the logger they describe, writing to w.
func (vals *Values) Logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	level := vals.String("log_level")
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		vals.fail("log_level", fmt.Errorf("%q: want debug, info, warn or error", level))
	}
	opts := &slog.HandlerOptions{Level: lvl, ReplaceAttr: readableDuration}
	switch format := vals.String("log_format"); format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts))
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts))
	default:
		vals.fail("log_format", fmt.Errorf("%q: want text or json", format))
		return slog.New(slog.NewTextHandler(w, opts))
	}
}

// readableDuration writes durations as text such as "30s": the JSON handler would
// write nanoseconds, which nobody reads at a glance.
func readableDuration(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}
