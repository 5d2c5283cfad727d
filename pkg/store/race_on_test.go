//go:build race

package store_test

// raceEnabled: the race detector makes the document codec ~10x slower.
const raceEnabled = true
