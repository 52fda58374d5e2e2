//go:build race

package sharedlimiter

const raceEnabled = true
