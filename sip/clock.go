package sip

import "time"

// Clock is the time the call core reads and the timers it sets: session
// timers and the call duration limit (Config.Clock), which may run for
// hours, and the dual-path logic (DualPathConfig.Clock). Tests drive
// their own, so nothing waits for real time.
type Clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a timer a Clock set.
type Timer interface{ Stop() bool }

type realClock struct{}

func (realClock) Now() time.Time                            { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
