package gateway

import "time"

// sendWindow enforces a limit of payloads per window (Discord's send limit
// per connection, the presence limit per shard) as a sliding window over
// the times payloads went out. It keeps only the times still inside the
// window, in a ring that grows as needed up to the limit: an idle
// connection, with a heartbeat or two per window, holds a handful.
type sendWindow struct {
	times  []time.Duration // ring of send times (since an origin of the owner's); len is the capacity
	start  int             // oldest time kept
	n      int             // times kept
	limit  int             // most times ever kept
	window time.Duration
}

// minSendWindowRing is the ring's first capacity: a window's worth of
// Discord's heartbeats with room to spare.
const minSendWindowRing = 4

func makeSendWindow(limit int, window time.Duration) sendWindow {
	// The server counts arrival times; a margin keeps delivery jitter from
	// squeezing limit+1 payloads into one of its windows.
	return sendWindow{limit: max(limit, 1), window: window + window/20}
}

// wait returns how long until one more payload may go out with at most
// allowed payloads in any window (0: now).
func (w *sendWindow) wait(now time.Duration, allowed int) time.Duration {
	allowed = min(max(allowed, 1), w.limit)
	if w.n < allowed {
		return 0
	}
	// The allowed-th most recent send must have left the window.
	t := w.times[(w.start+w.n-allowed)%len(w.times)]
	if d := t + w.window - now; d > 0 {
		return d
	}
	return 0
}

// record adds a send at now (times never decrease).
func (w *sendWindow) record(now time.Duration) {
	for w.n > 0 && w.times[w.start]+w.window <= now {
		w.start = (w.start + 1) % len(w.times) // out of the window: never looked at again
		w.n--
	}
	if w.n == len(w.times) {
		if w.n < w.limit {
			w.grow()
		} else {
			w.start = (w.start + 1) % len(w.times) // wait looks back at most limit sends
			w.n--
		}
	}
	w.times[(w.start+w.n)%len(w.times)] = now
	w.n++
}

// grow doubles the ring (at most to the limit), keeping the times in order.
func (w *sendWindow) grow() {
	c := min(max(2*len(w.times), minSendWindowRing), w.limit)
	t := make([]time.Duration, c)
	for i := range w.n {
		t[i] = w.times[(w.start+i)%len(w.times)]
	}
	w.times, w.start = t, 0
}

// reserveFor returns how many payloads per window stay reserved for the
// shard itself: the heartbeats a window holds, plus Identify/Resume and a
// server-requested heartbeat, at most half the limit.
func reserveFor(limit int, window, heartbeat time.Duration) int {
	r := 3
	if heartbeat > 0 {
		r += int((window + window/20 + heartbeat - 1) / heartbeat)
	}
	return min(r, limit/2)
}
