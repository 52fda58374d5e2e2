package gateway

import "time"

// sendWindow enforces Discord's per-connection send limit as a sliding
// window over the times payloads went out. User payloads may use the limit
// minus a reserve kept for heartbeats and Identify/Resume.
type sendWindow struct {
	times  []time.Duration // ring of send times (since conn start), len == limit
	head   int             // next slot to write
	n      int             // sends recorded, capped at len(times)
	window time.Duration
}

func newSendWindow(limit int, window time.Duration) *sendWindow {
	// The server counts arrival times; a margin keeps delivery jitter from
	// squeezing limit+1 payloads into one of its windows.
	return &sendWindow{times: make([]time.Duration, limit), window: window + window/20}
}

// wait returns how long until one more payload may go out with at most
// allowed payloads in any window (0: now).
func (w *sendWindow) wait(now time.Duration, allowed int) time.Duration {
	allowed = min(max(allowed, 1), len(w.times))
	if w.n < allowed {
		return 0
	}
	// The allowed-th most recent send must have left the window.
	t := w.times[(w.head-allowed+len(w.times))%len(w.times)]
	if d := t + w.window - now; d > 0 {
		return d
	}
	return 0
}

func (w *sendWindow) record(now time.Duration) {
	w.times[w.head] = now
	w.head = (w.head + 1) % len(w.times)
	w.n = min(w.n+1, len(w.times))
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
