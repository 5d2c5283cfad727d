package config

import (
	"strings"
	"testing"
)

func TestCloudEvents(t *testing.T) {
	c, err := Parse([]byte("cicdstatemgr:\n  cloudEvents:\n    sink: http://sink.example:8080/events\n    queueSize: 50\n    maxAttempts: \"3\"\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.CloudEvents(); got != (CloudEvents{Sink: "http://sink.example:8080/events", QueueSize: 50, MaxAttempts: 3}) {
		t.Fatalf("CloudEvents() = %+v", got)
	}
	c, err = Parse([]byte("cicdstatemgr:\n  slack: {}\n"), nil)
	if err != nil || c.CloudEvents() != (CloudEvents{}) {
		t.Fatalf("no block: %+v, %v", c.CloudEvents(), err)
	}
}

func TestCloudEventsRejected(t *testing.T) {
	for yaml, want := range map[string]string{
		"cloudEvents: http://x":                   "cloudEvents must be a map",
		"cloudEvents: {sink: ftp://x/}":           "cloudEvents.sink must be an absolute http or https URL",
		"cloudEvents: {sink: /relative}":          "cloudEvents.sink must be an absolute http or https URL",
		"cloudEvents: {sink: http://x, queue: 1}": "cloudEvents.queue is not a known setting",
		"cloudEvents: {queueSize: 0}":             "cloudEvents.queueSize must be a positive integer",
		"cloudEvents: {queueSize: 99999999}":      "cloudEvents.queueSize 99999999 is too large",
		"cloudEvents: {maxAttempts: many}":        "cloudEvents.maxAttempts must be a positive integer",
		"cloudEvents: {maxAttempts: 1000}":        "cloudEvents.maxAttempts 1000 is too large",
	} {
		_, err := Parse([]byte("cicdstatemgr:\n  "+yaml+"\n"), nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", yaml, err, want)
		}
	}
}
