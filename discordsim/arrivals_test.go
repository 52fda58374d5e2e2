package discordsim

import (
	"testing"
	"time"
)

// Identifies judged out of arrival order are measured by arrival.
func TestArrivalsOutOfOrder(t *testing.T) {
	const w = 100 * time.Millisecond
	t0 := time.Unix(1000, 0)
	var a arrivals
	a.add(t0)
	a.add(t0.Add(250 * time.Millisecond)) // judged first, arrived later
	// Arrived 120 ms after the first and 130 ms before the second: on time,
	// though the last accepted arrival is later than it.
	if near, ok := a.within(t0.Add(120*time.Millisecond), w); ok {
		t.Fatalf("on-time identify judged early (near %v)", near.Sub(t0))
	}
	// 50 ms before the later one: early.
	if _, ok := a.within(t0.Add(200*time.Millisecond), w); !ok {
		t.Fatal("identify 50 ms before an accepted one not judged early")
	}
	// 99 ms after the first: early.
	if _, ok := a.within(t0.Add(99*time.Millisecond), w); !ok {
		t.Fatal("identify 99 ms after an accepted one not judged early")
	}
	// Exactly a window after: on time.
	if _, ok := a.within(t0.Add(350*time.Millisecond), w); ok {
		t.Fatal("identify exactly a window after not accepted")
	}
}
