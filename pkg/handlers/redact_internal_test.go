package handlers

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
)

// TestRedactorCoversBase64: every secret is redacted plain and in base64
// (standard and URL alphabets, padded or not, alone or inside a longer
// encoded text at any alignment); user names are left alone.
func TestRedactorCoversBase64(t *testing.T) {
	cfg, err := config.Parse([]byte("cicdstatemgr: {}\n"), []byte(`cicdstatemgr:
  datasources: {redis: {username: cicdstatemgr, password: "123$aBcZ-pw"}}
  slack: {token: "xoxb-1234-abcd?>~"}
  trigger: {token: local-trigger-token}
`))
	if err != nil {
		t.Fatal(err)
	}
	redact := newRedactor(cfg)
	for _, secret := range []string{"123$aBcZ-pw", "xoxb-1234-abcd?>~", "local-trigger-token"} {
		texts := []string{"x " + secret + " y"}
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			for _, prefix := range []string{"", "a", "ab", "abc"} {
				for _, suffix := range []string{"", "z", "zz"} {
					texts = append(texts, "value: "+enc.EncodeToString([]byte(prefix+secret+suffix)))
				}
			}
		}
		for _, text := range texts {
			out := redact(text)
			if !strings.Contains(out, "[REDACTED]") {
				t.Errorf("%q: not redacted: %q", secret, out)
			}
			if strings.Contains(out, secret) {
				t.Errorf("%q: plain secret left in %q", secret, out)
			}
		}
	}
	if got := redact("user cicdstatemgr"); got != "user cicdstatemgr" {
		t.Errorf("user name redacted: %q", got)
	}
}
