package config

import (
	"strings"
	"testing"
)

func TestHTTPPolicy(t *testing.T) {
	c, err := Parse([]byte(`cicdstatemgr:
  slack: {url: "https://slack.example.com/api/chat.postMessage"}
  trigger: {url: "http://el-listener.ci.svc:8080/"}
  http:
    allowedHosts: [hooks.example.com, "*.corp.example.net:443"]
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.HTTPPolicy()
	if err != nil {
		t.Fatal(err)
	}
	for url, ok := range map[string]bool{
		"https://slack.example.com/x":     true,
		"http://el-listener.ci.svc:8080/": true,
		"http://el-listener.ci.svc/":      false,
		"http://hooks.example.com:9/":     true,
		"https://a.corp.example.net/":     true,
		"http://a.corp.example.net/":      false,
		"http://127.0.0.1/":               false,
	} {
		if err := p.Check(url); (err == nil) != ok {
			t.Errorf("%s: %v, want ok=%v", url, err, ok)
		}
	}
	// default: the two admin hosts only
	c, _ = Parse([]byte("cicdstatemgr:\n  slack: {url: \"https://slack.example.com/\"}\n"), nil)
	p, _ = c.HTTPPolicy()
	if p.Check("https://slack.example.com/y") != nil || p.Check("https://hooks.example.com/") == nil {
		t.Errorf("default policy")
	}
	for _, bad := range []string{"allowedHosts: a.example.com", "allowedHosts: [1]", "allowedHosts: ['a:b:c:d:x']", "allowedHosts: ['*']"} {
		c, err := Parse([]byte("cicdstatemgr:\n  http:\n    "+bad+"\n"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.HTTPPolicy(); err == nil || !strings.Contains(err.Error(), "cicdstatemgr.http.allowedHosts") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}
