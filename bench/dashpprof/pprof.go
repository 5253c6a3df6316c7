//go:build benchpprof

// This file is not built on its own. scripts/bench.sh --profile lays it into
// cmd/dashboard with `go build -overlay` and the benchpprof tag, to make a
// dashboard for profiling only: the real one stays without these endpoints.
//
// With BENCH_PPROF_ADDR set, the dashboard serves net/http/pprof on that address
// (loopback: the suite chooses it). With BENCH_CPUPROFILE set as well, it profiles
// its CPU from the first moment, so that the profile covers the cold start, until
// /debug/bench/cpu/stop is requested.
package main

import (
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	rpprof "runtime/pprof"
	"sync"
)

func init() {
	addr := os.Getenv("BENCH_PPROF_ADDR")
	if addr == "" {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/bench/cpu/stop", startCPU(os.Getenv("BENCH_CPUPROFILE")))
	go func() {
		if err := http.ListenAndServe(addr, mux); err != nil {
			slog.Error("bench pprof listener", "error", err)
		}
	}()
}

// startCPU starts the CPU profile into path, if set, and returns the handler that
// stops it.
func startCPU(path string) http.HandlerFunc {
	var stop func()
	if path != "" {
		f, err := os.Create(path)
		if err == nil {
			err = rpprof.StartCPUProfile(f)
		}
		if err != nil {
			slog.Error("bench cpu profile", "error", err)
		} else {
			stop = func() {
				rpprof.StopCPUProfile()
				f.Close()
			}
		}
	}
	var once sync.Once
	return func(w http.ResponseWriter, _ *http.Request) {
		if stop == nil {
			http.Error(w, "no cpu profile running", http.StatusNotFound)
			return
		}
		once.Do(stop)
		w.WriteHeader(http.StatusNoContent)
	}
}
