package httpclient

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cicdstatemgr/cicdstatemgr/internal/fuzzbudget"
)

func mustPolicy(t testing.TB, entries ...string) *Policy {
	t.Helper()
	p, err := NewPolicy(entries)
	if err != nil {
		t.Fatal(err)
	}
	p.APIServer = netip.MustParseAddr("203.0.113.7") // a public address standing for the API server
	return p
}

func TestPolicyCheck(t *testing.T) {
	p := mustPolicy(t, "hooks.example.com", "api.example.org:8443", "*.corp.example.net", "10.1.2.3:9000", "[fd00::1]:80")
	p.AllowURL("https://slack.example.com/api/chat.postMessage")
	p.AllowURL("http://127.0.0.1:18099/trigger")
	for _, c := range []struct {
		url  string
		ok   bool
		want string // part of the refusal
	}{
		{"https://hooks.example.com/x", true, ""},
		{"http://HOOKS.example.com.:1234/x", true, ""},
		{"https://api.example.org:8443/", true, ""},
		{"https://api.example.org/", false, "api.example.org is not in cicdstatemgr.http.allowedHosts"},
		{"https://a.b.corp.example.net/x", true, ""},
		{"https://corp.example.net/x", false, "not in"},
		{"https://evilcorp.example.net/x", false, "not in"},
		{"https://slack.example.com/other", true, ""},
		{"http://slack.example.com/other", false, "not in"}, // port 80, not 443
		{"http://127.0.0.1:18099/x", true, ""},
		{"http://127.0.0.1:18098/x", false, "127.0.0.1:18098 is not in"},
		{"http://127.0.0.1/", false, "127.0.0.1 is not in"},
		{"http://localhost:18099/", false, "localhost:18099 is not in"},
		{"http://10.1.2.3:9000/", true, ""},
		{"http://10.1.2.3:9001/", false, "not in"},
		{"http://[fd00::1]/", true, ""},
		{"http://[fd00::2]/", false, "not in"},
		{"http://[::ffff:127.0.0.1]:18099/", true, ""}, // the same address as 127.0.0.1
		{"http://[::ffff:127.0.0.1]/", false, "127.0.0.1 is not in"},
		{"http://[::1]/", false, "::1] is not in"},
		{"http://[fe80::1%25eth0]/", false, "IPv6 zones"},
		{"http://2130706433/", false, "non-standard IPv4"},
		{"http://2130706433:18099/", false, "non-standard IPv4"},
		{"http://0x7f.1:18099/", false, "non-standard IPv4"},
		{"http://0x7f000001/", false, "non-standard IPv4"},
		{"http://0177.0.0.1:18099/", false, "non-standard IPv4"},
		{"http://127.1:18099/", false, "non-standard IPv4"},
		{"http://169.254.169.254/latest/meta-data", false, "not in"},
		{"http://user:pw@hooks.example.com/", false, "user info"},
		{"ftp://hooks.example.com/", false, "http://"},
		{"//hooks.example.com/", false, "http://"},
		{"hooks.example.com/x", false, "http://"},
		{"http://*.corp.example.net/", false, "not a valid host name"},
	} {
		err := p.Check(c.url)
		if c.ok != (err == nil) {
			t.Errorf("%s: err %v, want ok=%v", c.url, err, c.ok)
			continue
		}
		if err != nil {
			var re *RefusedError
			if !errors.As(err, &re) {
				t.Errorf("%s: %T is no *RefusedError", c.url, err)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "host ") {
				t.Errorf("%s: %q does not contain %q", c.url, err, c.want)
			}
		}
	}
}

func TestPolicyRestricted(t *testing.T) {
	p := mustPolicy(t)
	for _, a := range []string{"127.0.0.1", "127.9.9.9", "::1", "169.254.169.254", "fe80::1", "10.0.0.1", "172.16.0.1",
		"172.31.255.255", "192.168.1.1", "fc00::1", "fd12::1", "0.0.0.0", "::", "0.1.2.3", "100.64.0.1", "224.0.0.1",
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::7f00:1", "64:ff9b::a00:1", "203.0.113.7"} {
		if bad, _ := p.Restricted(netip.MustParseAddr(a)); !bad {
			t.Errorf("%s is not restricted", a)
		}
	}
	for _, a := range []string{"8.8.8.8", "1.1.1.1", "172.32.0.1", "2001:4860:4860::8888", "64:ff9b::808:808"} {
		if bad, why := p.Restricted(netip.MustParseAddr(a)); bad {
			t.Errorf("%s is restricted (%s)", a, why)
		}
	}
}

func TestNewPolicyRefusesBadEntries(t *testing.T) {
	for _, e := range []string{"host:port", "a:99999", "*", "*.", "a.*.b", "2130706433", "http://x/"} {
		if _, err := NewPolicy([]string{e}); err == nil || !strings.Contains(err.Error(), AllowedHostsKey) {
			t.Errorf("%q: %v", e, err)
		}
	}
}

// fakeResolver resolves every name to the given addresses.
type fakeResolver map[string][]string

func (f fakeResolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	var out []net.IPAddr
	for _, a := range f[host] {
		out = append(out, net.IPAddr{IP: net.ParseIP(a)})
	}
	if len(out) == 0 {
		return nil, errors.New("no such host")
	}
	return out, nil
}

// counting is an httptest server that counts its requests.
func counting(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		io.Copy(io.Discard, r.Body)
		if h != nil {
			h(w, r)
			return
		}
		w.Write([]byte("ok"))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func portOf(t *testing.T, rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

func fastClient() *Client {
	return &Client{Timeout: 2 * time.Second, Attempts: 2, Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}
}

// TestPolicyDial: the check holds after DNS resolution. A wildcard entry
// whose name resolves to loopback is refused when dialling, nothing is
// sent; the same server listed exactly is reached (positive control).
func TestPolicyDial(t *testing.T) {
	srv, n := counting(t, nil)
	port := portOf(t, srv.URL)
	ctx := context.Background()

	// a name under an allowed wildcard that resolves to 127.0.0.1 (DNS rebinding)
	p := mustPolicy(t, "*.hooks.test")
	p.Resolver = fakeResolver{"evil.hooks.test": {"127.0.0.1"}}
	_, err := fastClient().Do(ctx, Request{URL: "http://evil.hooks.test:" + port + "/", Policy: p})
	var re *RefusedError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "resolves to 127.0.0.1, a loopback address") {
		t.Fatalf("rebinding to loopback: %v", err)
	}
	// localhost through the real resolver, under a wildcard-free policy: refused at the check
	_, err = fastClient().Do(ctx, Request{URL: "http://localhost:" + port + "/", Policy: p})
	if !errors.As(err, &re) {
		t.Fatalf("localhost: %v", err)
	}
	// every resolved address is checked: a public one first that does not answer... here only private ones
	p.Resolver = fakeResolver{"mixed.hooks.test": {"10.0.0.1", "::1"}}
	_, err = fastClient().Do(ctx, Request{URL: "http://mixed.hooks.test:" + port + "/", Policy: p})
	if !errors.As(err, &re) {
		t.Fatalf("private addresses: %v", err)
	}
	if n.Load() != 0 {
		t.Fatalf("the server got %d requests", n.Load())
	}

	// positive control: the name listed exactly may reach loopback
	p = mustPolicy(t, "svc.hooks.test:"+port)
	p.Resolver = fakeResolver{"svc.hooks.test": {"127.0.0.1"}}
	if _, err := fastClient().Do(ctx, Request{URL: "http://svc.hooks.test:" + port + "/", Policy: p}); err != nil {
		t.Fatalf("exact entry: %v", err)
	}
	// and the address listed exactly
	p = mustPolicy(t, "127.0.0.1:"+port)
	if _, err := fastClient().Do(ctx, Request{URL: srv.URL + "/", Policy: p}); err != nil {
		t.Fatalf("exact address: %v", err)
	}
	if n.Load() != 2 {
		t.Fatalf("the server got %d requests, want 2", n.Load())
	}
}

// TestPolicyRedirects: a redirect from an allowed host to another host
// (loopback or not) is not followed, and the target receives nothing.
func TestPolicyRedirects(t *testing.T) {
	target, hits := counting(t, nil)
	// 127.0.0.2 is loopback too, but another host than the redirecting one
	redirector, _ := counting(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/same":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/ok":
			w.Write([]byte("ok"))
		case "/ip":
			http.Redirect(w, r, target.URL+"/", http.StatusFound)
		case "/localhost":
			http.Redirect(w, r, "http://localhost:"+portOf(t, target.URL)+"/", http.StatusFound)
		case "/decimal":
			http.Redirect(w, r, "http://2130706433:"+portOf(t, target.URL)+"/", http.StatusFound)
		}
	})
	p := mustPolicy(t, "127.0.0.1:"+portOf(t, redirector.URL))
	ctx := context.Background()
	if resp, err := fastClient().Do(ctx, Request{URL: redirector.URL + "/same", Policy: p}); err != nil || resp.Body != "ok" {
		t.Fatalf("same-host redirect: %v %v", resp, err)
	}
	for _, path := range []string{"/ip", "/localhost", "/decimal"} {
		_, err := fastClient().Do(ctx, Request{URL: redirector.URL + path, Policy: p})
		var re *RefusedError
		if !errors.As(err, &re) {
			t.Errorf("%s: %v", path, err)
		}
	}
	// without a policy too: a cross-host redirect is not followed (headers
	// such as the trigger's would go along)
	if _, err := fastClient().Do(ctx, Request{URL: redirector.URL + "/ip", Headers: []Header{{"X-Key", "secret"}}}); err == nil {
		t.Errorf("a cross-host redirect was followed without a policy")
	}
	if hits.Load() != 0 {
		t.Fatalf("the redirect target got %d requests", hits.Load())
	}
}

// TestPolicyHidesBodiesOfWildcardHosts: a non-2xx reply's body is kept only
// for hosts listed exactly.
func TestPolicyHidesBodiesOfWildcardHosts(t *testing.T) {
	srv, _ := counting(t, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte("internal detail"))
	})
	port := portOf(t, srv.URL)
	ctx := context.Background()
	p := mustPolicy(t, "127.0.0.1:"+port)
	_, err := fastClient().Do(ctx, Request{URL: srv.URL, Policy: p})
	if err == nil || !strings.Contains(err.Error(), "internal detail") {
		t.Fatalf("exact host: %v", err)
	}
	// a wildcard host: the same server through a name that resolves to a
	// public-looking address cannot be built here, so check the flag directly
	pw := mustPolicy(t, "*.hooks.test")
	if pw.Exact("http://a.hooks.test/") || !p.Exact(srv.URL) {
		t.Fatalf("Exact")
	}
}

// FuzzPolicyCheck: whatever the URL, a URL the policy lets through names an
// allowed host, and never one whose host is a loopback, private or
// link-local address unless that address is listed; checking stays within
// the URL's resource budget (internal/fuzzbudget).
func FuzzPolicyCheck(f *testing.F) {
	for _, s := range []string{"http://127.0.0.1/", "http://2130706433/", "http://0x7f.1/", "http://[::ffff:127.0.0.1]/",
		"http://[::1]:80/", "http://localhost/", "https://hooks.example.com/x", "http://a.corp.example.net:8080/",
		"http://0177.0.0.1/", "http://127.1/", "http://[fe80::1%25lo]/", "http://10.0.0.1.nip.io/", "http://%31%32%37.0.0.1/",
		"http://127.0.0.1.:80/", "http://[0:0:0:0:0:ffff:7f00:1]/", "http://①②⑦.0.0.1/"} {
		f.Add(s)
	}
	p := mustPolicy(f, "hooks.example.com", "*.corp.example.net", "192.168.0.10:8080")
	f.Fuzz(func(t *testing.T, raw string) {
		var err error
		fuzzbudget.Check(t, fuzzbudget.For(int64(len(raw)), 0), func() { err = p.Check(raw) }, raw)
		if err != nil {
			return
		}
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil {
			t.Fatalf("allowed an unparsable URL %q", raw)
		}
		h := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
		if a, err := netip.ParseAddr(h); err == nil {
			if a.Unmap() != netip.MustParseAddr("192.168.0.10") || u.Port() != "8080" {
				t.Fatalf("allowed address %s in %q", a, raw)
			}
			return
		}
		if looksNumeric(h) {
			t.Fatalf("allowed a numeric host %q", raw)
		}
		if h != "hooks.example.com" && !strings.HasSuffix(h, ".corp.example.net") {
			t.Fatalf("allowed host %q of %q", h, raw)
		}
	})
}
