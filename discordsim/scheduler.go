package discordsim

import (
	"math"
	"math/rand/v2"
	"time"
)

// schedTick is the scheduler's period: event-rate credit, random faults and
// session expiry are worked out this often for every session at once, so
// traffic for hundreds of shards costs one ticker.
const schedTick = 10 * time.Millisecond

// maxRateBacklog bounds rate traffic owed to one session (Config's
// rateBacklog, which tests shrink): an attached
// connection whose writer is this many events behind gets no more until it
// catches up, and one tick gives a detached session at most this many (a
// stalled scheduler does not owe the time it lost). Rate traffic is a rate,
// not a debt: a lowered rate must take effect at once, whatever ran before.
const maxRateBacklog = 1 << 14

// schedule is the single background loop behind EventRate, FaultRate and
// SessionTTL. It runs until the server closes.
func (s *Server) schedule() {
	t := time.NewTicker(schedTick)
	defer t.Stop()
	rng := rand.New(rand.NewPCG(uint64(s.cfg.Seed)+1, 0x5eed))
	last := time.Now()
	var sessions []*session
	var conns []*conn
	for {
		select {
		case <-s.closing:
			return
		case now := <-t.C:
			dt := now.Sub(last).Seconds()
			last = now
			perSession := math.Float64frombits(s.eventRate.Load()) * dt
			faultChance := math.Float64frombits(s.faultRate.Load()) * dt

			s.mu.Lock()
			sessions = sessions[:0]
			for _, ss := range s.sessions {
				sessions = append(sessions, ss)
			}
			conns = conns[:0]
			if faultChance > 0 {
				for c := range s.conns {
					conns = append(conns, c)
				}
			}
			s.mu.Unlock()

			for _, ss := range sessions {
				s.tickSession(ss, now, perSession)
			}
			for _, c := range conns {
				if rng.Float64() >= faultChance {
					continue
				}
				c.mu.Lock()
				live := c.sess != nil && c.live && c.closeCode == 0
				c.mu.Unlock()
				if live {
					s.inject(c, s.cfg.FaultKinds[rng.IntN(len(s.cfg.FaultKinds))])
				}
			}
			clear(sessions) // do not pin ended sessions until the next tick
			clear(conns)
		}
	}
}

// tickSession expires a detached session past its TTL and gives a started
// session its share of rate traffic: an attached one through its writer, a
// detached one straight into its replay buffer.
func (s *Server) tickSession(ss *session, now time.Time, add float64) {
	ss.mu.Lock()
	if ss.expiredLocked(now, s.cfg.SessionTTL) {
		ss.ended = true
		ss.mu.Unlock()
		s.removeSession(ss)
		return
	}
	if add <= 0 || !ss.started {
		ss.mu.Unlock()
		return
	}
	// The credit keeps only the fraction of an event: whatever add was, the
	// next tick starts from less than one (an int64 conversion of a huge
	// credit overflowed, and the credit never came down again).
	ss.credit += add
	whole := math.Floor(ss.credit)
	ss.credit -= whole
	if !(ss.credit >= 0 && ss.credit < 1) { // an infinite add: rates are clamped, but never keep NaN
		ss.credit = 0
	}
	if !(whole >= 1) {
		ss.mu.Unlock()
		return
	}
	backlog := s.cfg.rateBacklog
	k := int64(min(whole, float64(backlog)))
	if c := ss.conn; c != nil {
		ss.mu.Unlock()
		// Only this goroutine adds to pending and only the writer takes from
		// it, so pending never exceeds the backlog bound.
		if p := c.pending.Load(); p < backlog {
			c.pending.Add(min(k, backlog-p))
		}
		c.notify()
		return
	}
	idBase := uint64(now.UnixMilli()-discordEpochMs) << 22
	var made uint64
	for ; k > 0; k-- {
		b, guild, ok := ss.nextMessageLocked(s.cfg.MessageVariety)
		if !ok {
			break
		}
		ss.appendLocked(b, idBase|s.msgSeq.Add(1)&0x3fffff, guild, s.cfg.ReplayBuffer)
		made++
	}
	ss.mu.Unlock()
	s.dispatches.Add(made)
}

// inject applies one fault to one connection.
func (s *Server) inject(c *conn, k FaultKind) {
	s.countFault(k.String(), 1) // before acting: a client that sees it finds it counted
	switch k {
	case FaultReconnect:
		c.sendFrame(frameReconnect)
	case FaultInvalidResumable:
		c.sendFrame(frameInvalidTrue)
	case FaultInvalidFresh:
		c.invalidate()
		c.sendFrame(frameInvalidFalse)
	case FaultClose4000:
		c.closeWith(4000, closeReason(4000))
	case FaultClose4007:
		c.closeWith(4007, closeReason(4007))
	case FaultClose4009:
		c.closeWith(4009, closeReason(4009))
	case FaultZombie:
		c.zombie.Store(true)
	case FaultDropTCP:
		c.dropTCP()
	}
	c.log.Debug("random fault", "fault", k.String())
}
