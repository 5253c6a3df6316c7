package config

import (
	"errors"
	"fmt"
	"io"
)

// ExitCode maps the error a program's run returned to its exit code, printing it to
// stderr: 0 for none or a help request, 2 for usage and config errors, 1 otherwise.
func ExitCode(err error, program string, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, ErrHelp):
		return 0
	case errors.Is(err, ErrUsage):
		fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for the settings.\n", program,
			trimUsage(err), program)
		return 2
	default:
		fmt.Fprintf(stderr, "%s: %v\n", program, err)
		return 1
	}
}

// trimUsage drops the "usage: " marker from the message; it is for errors.Is only.
func trimUsage(err error) string {
	msg := err.Error()
	const p = "usage: "
	if len(msg) > len(p) && msg[:len(p)] == p {
		return msg[len(p):]
	}
	return msg
}
