package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"knative.dev/pkg/apis"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/slack"
)

// slowEnd is how one slow client ended: after how long, and the status the
// controller answered (0: the connection was closed without an answer).
type slowEnd struct {
	kind   string
	took   time.Duration
	status int
	header http.Header
}

// slowBound is how long the Slack listener may let a slow client hold a
// connection: its read timeout (10 s, headers 5 s) plus room for a loaded
// machine. A client still connected after it means a limit did not work.
const slowBound = 25 * time.Second

// slowClient connects to the Slack port from the address local, writes head,
// then dribbles one byte of drip every 500 ms, and reads until the
// controller answers or closes the connection (or slowBound passes).
func slowClient(kind, local, head, drip string) slowEnd {
	start := time.Now()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", strings.TrimPrefix(ctrlURL, "http://"))
	if err != nil {
		return slowEnd{kind: kind, took: time.Since(start)}
	}
	defer c.Close()
	c.SetDeadline(start.Add(slowBound + 5*time.Second))
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		if _, err := io.WriteString(c, head); err != nil {
			return
		}
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := io.WriteString(c, string(drip[i%len(drip)])); err != nil {
				return
			}
		}
	}()
	end := slowEnd{kind: kind}
	if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
		end.status, end.header = resp.StatusCode, resp.Header
		resp.Body.Close()
	}
	end.took = time.Since(start)
	return end
}

// slowLoris never finishes its headers.
func slowLoris(local string) slowEnd {
	return slowClient("headers", local, "POST "+slack.PathInteractions+" HTTP/1.1\r\nHost: controller\r\nX-Pad: ", "abcdefgh")
}

// slowBody sends headers that pass every check made before the body (a fresh
// timestamp, a well-formed v0= signature that is not the secret's) and a
// body under the size cap, one byte every 500 ms: the signature can be
// checked only when the whole body is in.
func slowBody(local string) slowEnd {
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: controller\r\nContent-Type: application/x-www-form-urlencoded\r\n"+
		"X-Slack-Request-Timestamp: %d\r\nX-Slack-Signature: v0=%s\r\nContent-Length: 100000\r\n\r\npayload=",
		slack.PathInteractions, time.Now().Unix(), strings.Repeat("0", 64))
	return slowClient("body", local, head, "x")
}

// controllerPID is the pid hack/stack.sh recorded for our controller.
func controllerPID(t *testing.T) string {
	t.Helper()
	pid, err := os.ReadFile(filepath.Join(stackEnv["CLUSTER_DIR"], "run", "cicdstatemgr-controller.pid"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(pid))
}

func readyz(t *testing.T) (int, string) {
	t.Helper()
	resp, err := http.Get(probeURL + "/readyz")
	if err != nil {
		t.Fatalf("/readyz on the probe port: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// budgetCount is cicdstatemgr_budget_exceeded_total{budget}, 0 before its first hit.
func budgetCount(t *testing.T, budget string) float64 {
	t.Helper()
	return metricOr(t, `cicdstatemgr_budget_exceeded_total{budget="`+budget+`"}`, 0)
}

// TestHTTPBudgets: 200 slow, unsigned clients of the Slack port (100 that
// never finish their headers, all from 127.0.0.1; 100 that send a plausible
// signed-looking request and dribble its body, from ten other loopback
// addresses) while a normal CustomRun is created. The CustomRun completes,
// the controller keeps its process, stays ready on the probe port and under
// 256 MiB; every slow client is answered or disconnected within the
// listener's timeouts; the per-client connection cap and the in-flight cap
// refuse the excess at once and count it. Afterwards a correctly signed
// request gets its normal answer, and a signed request announcing a body over
// the cap gets 413 without the body being sent.
func TestHTTPBudgets(t *testing.T) {
	fake := startFakeSlack(t) // receives what the controller forwards to trigger.url
	ns := namespace(t, "httpbudgets")
	initContext(t, ns, "ctx")
	pid, startedAt := controllerPID(t), metric(t, "process_start_time_seconds")
	before := map[string]float64{}
	for _, b := range []string{"http_connections_per_client", "http_inflight", "http_body"} {
		before[b] = budgetCount(t, b)
	}

	ends := make(chan slowEnd, 200)
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i < 100 {
				ends <- slowLoris("127.0.0.1")
			} else {
				ends <- slowBody(fmt.Sprintf("127.0.0.%d", 2+i%10))
			}
		}()
	}
	time.Sleep(time.Second) // let them connect

	created := time.Now()
	normal := runOne(t, ns, opRun("normal", "set", "ctx", arrParam("set", "state.ok=yes")), time.Minute)
	if c := normal.Status.GetCondition(apis.ConditionSucceeded); !c.IsTrue() {
		t.Fatalf("the normal CustomRun beside the slow clients: %s: %s", c.Reason, c.Message)
	}
	t.Logf("the normal CustomRun beside the slow clients succeeded in %s", time.Since(created).Round(time.Millisecond))
	if code, body := readyz(t); code != http.StatusOK || body != "ok" {
		t.Fatalf("/readyz during the attack: %d %q", code, body)
	}

	wg.Wait()
	close(ends)
	statuses := map[string]map[int]int{"headers": {}, "body": {}}
	var slowest time.Duration
	for e := range ends {
		statuses[e.kind][e.status]++
		slowest = max(slowest, e.took)
		if e.took > slowBound {
			t.Errorf("a slow client (%s) held its connection for %s", e.kind, e.took)
		}
		if e.status >= 200 && e.status < 300 {
			t.Errorf("a slow unsigned client (%s) was answered %d", e.kind, e.status)
		}
		if e.status == http.StatusServiceUnavailable && e.header.Get("Retry-After") == "" {
			t.Errorf("a 503 without Retry-After: %v", e.header)
		}
	}
	t.Logf("slow clients ended within %s: %v", slowest.Round(time.Millisecond), statuses)

	perClient := budgetCount(t, "http_connections_per_client") - before["http_connections_per_client"]
	inflight := budgetCount(t, "http_inflight") - before["http_inflight"]
	t.Logf("refused: %v connections over the per-client cap, %v requests over the in-flight cap", perClient, inflight)
	// 100 connections of one address with a cap of 16 open at once
	if perClient < 50 {
		t.Errorf("budget_exceeded_total{budget=http_connections_per_client} rose by %v, want most of the 100 slow-header connections of 127.0.0.1", perClient)
	}
	// 100 requests holding their body back, with 64 slots
	if inflight < 20 || statuses["body"][http.StatusServiceUnavailable] < 20 {
		t.Errorf("budget_exceeded_total{budget=http_inflight} rose by %v and %d slow-body requests got 503, want the excess over 64 of 100",
			inflight, statuses["body"][http.StatusServiceUnavailable])
	}

	if got := controllerPID(t); got != pid {
		t.Fatalf("the controller's pid changed from %s to %s\n%s", pid, got, controllerLogTail())
	}
	if got := metric(t, "process_start_time_seconds"); got != startedAt {
		t.Fatalf("the controller restarted (started at %v, now %v)\n%s", startedAt, got, controllerLogTail())
	}
	if peak := controllerPeakRSS(t); peak > 256<<20 {
		t.Errorf("the controller's peak RSS is %d MiB, over the 256 MiB its Deployment allows", peak>>20)
	} else {
		t.Logf("the controller's peak RSS: %d MiB", peak>>20)
	}
	if code, body := readyz(t); code != http.StatusOK || body != "ok" {
		t.Fatalf("/readyz after the attack: %d %q", code, body)
	}

	// Positive control: a correctly signed slash command gets its usual answer
	// (the form as JSON) and is forwarded to trigger.url.
	command := "command=%2Fdeploy&text=" + url.QueryEscape(fmt.Sprintf("after-attack-%d", time.Now().UnixNano()))
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, slack.HeaderTimestamp: {ts},
		slack.HeaderSignature: {slack.Sign(slackSigningSecret, ts, []byte(command))}}
	if code, body := post(t, ctrlURL+slack.PathCommands, h, command); code != http.StatusOK || !strings.Contains(body, `"command":"/deploy"`) {
		t.Fatalf("a signed slash command after the attack: %d %q", code, body)
	}
	text, _ := url.ParseQuery(command)
	forwarded := func() bool {
		fake.mu.Lock()
		defer fake.mu.Unlock()
		for _, p := range fake.posts {
			if strings.HasPrefix(p, "/trigger ") && strings.Contains(p, text.Get("text")) {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(30 * time.Second); !forwarded(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the signed command was not forwarded to trigger.url\n%s", controllerLogTail())
		}
	}

	// A signed request announcing 200 KiB: 413 before the body is sent.
	c, err := net.Dial("tcp", strings.TrimPrefix(ctrlURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(slowBound))
	big := "payload=" + strings.Repeat("x", 200<<10)
	ts = strconv.FormatInt(time.Now().Unix(), 10)
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: controller\r\nContent-Type: application/x-www-form-urlencoded\r\n"+
		"X-Slack-Request-Timestamp: %s\r\nX-Slack-Signature: %s\r\nContent-Length: %d\r\n\r\n",
		slack.PathInteractions, ts, slack.Sign(slackSigningSecret, ts, []byte(big)), len(big))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to a signed request of 200 KiB whose body was never sent: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("a signed request of 200 KiB: %d, want 413", resp.StatusCode)
	}
	if got := budgetCount(t, "http_body"); got < before["http_body"]+1 {
		t.Errorf("budget_exceeded_total{budget=http_body} %v -> %v", before["http_body"], got)
	}
}
