//go:build race

package fuzzbudget

// raceEnabled: built with -race (see Check).
const raceEnabled = true
