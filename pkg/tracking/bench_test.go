package tracking_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/miniray/miniray/internal/natstest"
	"github.com/miniray/miniray/pkg/tracking"
)

// BenchmarkProgress measures what one progress report costs the job, against a real
// embedded server: building the event and queueing it; the network is the sender's.
func BenchmarkProgress(b *testing.B) {
	s := natstest.Start(b)
	c, err := tracking.NewClient(s.NC, tracking.WithSpoolDir(b.TempDir()),
		tracking.WithQueueSize(1<<22))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(context.Background())
	job := tracking.Training(func(ctx context.Context, n int) (int, error) {
		task := tracking.FromContext(ctx)
		metrics := map[string]float64{"loss": 0.5, "accuracy": 0.9}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range n {
			task.Progress(i, n, metrics)
		}
		b.StopTimer()
		return n, nil
	}, tracking.WithClient(c))
	if _, err := job(context.Background(), b.N); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkProgressDefaultQueue is a job that reports in a tight loop, far faster
// than JetStream acknowledges, with the default queue: past 65,536 events waiting,
// the excess goes through the spool. Each call is timed alone; besides the mean it
// reports the median, the 99th percentile and the longest call, and how many events
// were dropped, which must be none.
func BenchmarkProgressDefaultQueue(b *testing.B) {
	s := natstest.Start(b)
	c, err := tracking.NewClient(s.NC, tracking.WithSpoolDir(b.TempDir()))
	if err != nil {
		b.Fatal(err)
	}
	took := make([]time.Duration, b.N)
	job := tracking.Training(func(ctx context.Context, n int) (int, error) {
		task := tracking.FromContext(ctx)
		metrics := map[string]float64{"loss": 0.5, "accuracy": 0.9}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range n {
			t0 := time.Now()
			task.Progress(i, n, metrics)
			took[i] = time.Since(t0)
		}
		b.StopTimer()
		return n, nil
	}, tracking.WithClient(c))
	if _, err := job(context.Background(), b.N); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		b.Logf("close: %v", err)
	}
	slices.Sort(took)
	at := func(q float64) float64 { return float64(took[int(q*float64(len(took)-1))]) }
	b.ReportMetric(at(0.5), "median-ns")
	b.ReportMetric(at(0.99), "p99-ns")
	b.ReportMetric(at(1), "max-ns")
	b.ReportMetric(float64(c.Dropped()), "dropped")
}
