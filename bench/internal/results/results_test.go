package results

import (
	"testing"
	"time"
)

func TestSummarise(t *testing.T) {
	d := make([]time.Duration, 1000)
	for i := range d {
		d[len(d)-1-i] = time.Duration(i+1) * time.Microsecond // 1µs to 1ms, unsorted
	}
	got := Summarise(d, 100*time.Nanosecond)
	want := Dist{Count: 1000, MeanNs: 500400, MedianNs: 499900, P90Ns: 899900,
		P99Ns: 989900, P999Ns: 998900, MaxNs: 999900}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestSummariseNeverNegative(t *testing.T) {
	got := Summarise([]time.Duration{10, 20}, time.Microsecond)
	if got.MedianNs != 0 || got.MaxNs != 0 || got.MeanNs != 0 {
		t.Errorf("got %+v, want zeros when the overhead exceeds every sample", got)
	}
}

func TestSummariseEmpty(t *testing.T) {
	if got := Summarise(nil, 0); got != (Dist{}) {
		t.Errorf("got %+v, want the zero Dist", got)
	}
}
