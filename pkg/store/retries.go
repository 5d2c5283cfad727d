package store

import "sync/atomic"

// txRetries counts the optimistic transactions (WATCH, MULTI/EXEC) of this process
// that lost a race to another writer and were tried again: what many writers on one
// context cost (issue 13, "hot contexts"). The controller exports it as the metric
// cicdstatemgr_store_tx_retries_total; the bench reads it around its hot-context row.
var txRetries atomic.Uint64

// countTxRetry notes one lost race (called where the retry backs off).
func countTxRetry() { txRetries.Add(1) }

// TxRetries is the number of optimistic transactions retried after a lost race since
// the process started, as a float for a Prometheus CounterFunc.
func TxRetries() float64 { return float64(txRetries.Load()) }
