package tracking_test

import (
	"context"
	"testing"

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
