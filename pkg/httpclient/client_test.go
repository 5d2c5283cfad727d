package httpclient_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/httpclient"
)

func fast() *httpclient.Client {
	return &httpclient.Client{Timeout: time.Second, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
}

func server(t *testing.T, h func(n int32, w http.ResponseWriter, r *http.Request)) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h(n.Add(1)-1, w, r)
	}))
	t.Cleanup(s.Close)
	return s, &n
}

func TestSendsHeadersBodyAndUserAgent(t *testing.T) {
	var got *http.Request
	var body []byte
	s, _ := server(t, func(_ int32, w http.ResponseWriter, r *http.Request) {
		got, body = r, nil
		body, _ = io.ReadAll(r.Body)
		w.Write([]byte(`{"ok":true}`))
	})
	resp, err := fast().Do(context.Background(), httpclient.Request{URL: s.URL + "/p?q=1",
		Headers: []httpclient.Header{{Name: "x-custom", Value: "v"}}, Body: []byte("héllo ✓")})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 || resp.Body != `{"ok":true}` {
		t.Errorf("reply %+v", resp)
	}
	if got.Method != "POST" || got.URL.RawQuery != "q=1" || got.Header.Get("X-Custom") != "v" ||
		got.Header.Get("User-Agent") != "cicdstatemgr/"+httpclient.Version {
		t.Errorf("request %s %s %v", got.Method, got.URL, got.Header)
	}
	if string(body) != "héllo ✓" {
		t.Errorf("body %q (UTF-8 expected)", body)
	}
}

func TestClientErrorNotRetried(t *testing.T) {
	s, n := server(t, func(_ int32, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte("denied"))
	})
	resp, err := fast().Do(context.Background(), httpclient.Request{URL: s.URL + "/secret-path"})
	var he *httpclient.Error
	if !errors.As(err, &he) || he.Status != 401 || he.Transient() || resp == nil || resp.Body != "denied" {
		t.Fatalf("err %v resp %+v", err, resp)
	}
	if n.Load() != 1 {
		t.Errorf("%d attempts, want 1", n.Load())
	}
	if strings.Contains(err.Error(), "secret-path") {
		t.Errorf("error names the URL path: %v", err)
	}
}

func TestServerErrorRetried(t *testing.T) {
	s, n := server(t, func(i int32, w http.ResponseWriter, _ *http.Request) {
		if i < 2 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.Write([]byte("fine"))
	})
	resp, err := fast().Do(context.Background(), httpclient.Request{URL: s.URL})
	if err != nil || resp.Body != "fine" || n.Load() != 3 {
		t.Fatalf("err %v resp %+v attempts %d", err, resp, n.Load())
	}
	n.Store(-10) // always failing from now on
	_, err = fast().Do(context.Background(), httpclient.Request{URL: s.URL})
	var he *httpclient.Error
	if !errors.As(err, &he) || he.Attempts != 3 || !he.Transient() || he.Status != 500 {
		t.Fatalf("err %v", err)
	}
}

func TestTimeoutRetriedAndReported(t *testing.T) {
	release := make(chan struct{})
	s, n := server(t, func(_ int32, _ http.ResponseWriter, _ *http.Request) { <-release })
	defer close(release)
	c := fast()
	c.Timeout = 50 * time.Millisecond
	_, err := c.Do(context.Background(), httpclient.Request{URL: s.URL + "/hook/T123/secret"})
	if err == nil || !strings.Contains(err.Error(), "no reply within 50ms") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("err %v", err)
	}
	if n.Load() != 3 {
		t.Errorf("%d attempts", n.Load())
	}
}

func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	start := time.Now()
	_, err = httpclient.New().Do(context.Background(), httpclient.Request{URL: "http://" + addr + "/x"})
	var he *httpclient.Error
	if !errors.As(err, &he) || he.Host != addr || he.Attempts != 3 || !he.Transient() || !strings.Contains(err.Error(), "cannot connect") {
		t.Fatalf("err %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("default client took %s to give up", d)
	}
}

func TestInvalidURL(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:80/x", "ftp://h/x", "http:///x"} {
		_, err := fast().Do(context.Background(), httpclient.Request{URL: u})
		var he *httpclient.Error
		if !errors.As(err, &he) || he.Attempts != 1 {
			t.Errorf("%q: err %v", u, err)
		}
	}
}

func TestInvalidUTF8ReplyAndBodyCap(t *testing.T) {
	s, _ := server(t, func(_ int32, w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("a\xffb" + strings.Repeat("x", 100)))
	})
	c := fast()
	c.MaxBodyBytes = 10
	resp, err := c.Do(context.Background(), httpclient.Request{URL: s.URL})
	if err != nil || resp.Body != "a\uFFFDb"+strings.Repeat("x", 7) {
		t.Fatalf("err %v body %q", err, resp.Body)
	}
}

func TestContextCancelStopsRetries(t *testing.T) {
	s, n := server(t, func(_ int32, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) })
	c := fast()
	c.Backoff, c.MaxBackoff = time.Hour, time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Do(ctx, httpclient.Request{URL: s.URL})
	if err == nil || time.Since(start) > 2*time.Second || n.Load() != 1 {
		t.Fatalf("err %v after %s, %d attempts", err, time.Since(start), n.Load())
	}
}
