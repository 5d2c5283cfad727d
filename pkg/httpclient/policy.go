package httpclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// AllowedHostsKey is the config.yaml key (under cicdstatemgr) of the hosts
// that URLs written by pipeline authors may reach.
const AllowedHostsKey = "cicdstatemgr.http.allowedHosts"

// Policy says where a URL written by a pipeline author may go. A host is
// reached only when it matches an entry:
//
//   - "name" or "name:port" (a DNS name or an IP address, IPv6 in brackets
//     when a port follows): exactly that host, on any port or on that port.
//     An exact entry may reach any address, private ones included: the admin
//     named it;
//   - "*.example.com" or "*.example.com:443": any name under example.com.
//     Such a host may not reach a restricted address (Restricted): the
//     check is made on the addresses the name resolves to, when dialling.
//
// Anything else is refused before a byte is sent, and so is a redirect to
// another host. A Policy is safe for concurrent use.
type Policy struct {
	exact []entry
	wild  []entry
	// Resolver resolves names when dialling; nil: net.DefaultResolver.
	Resolver interface {
		LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	}
	// APIServer is the Kubernetes API server's address, refused unless
	// listed exactly; NewPolicy sets it from KUBERNETES_SERVICE_HOST.
	APIServer netip.Addr
}

type entry struct {
	host string // canonical: lower case, no trailing dot, IPs in netip form; "*.x" keeps ".x"
	port string // "" = any
}

// RefusedError is a request the policy did not let out: nothing was sent.
type RefusedError struct {
	Host   string
	Reason string
}

func (e *RefusedError) Error() string { return "host " + e.Host + " " + e.Reason }

// NewPolicy builds a policy from allow-list entries. Entries that do not
// parse are an error naming them (they are the admin's configuration).
func NewPolicy(entries []string) (*Policy, error) {
	p := &Policy{}
	if h := strings.TrimSpace(os.Getenv("KUBERNETES_SERVICE_HOST")); h != "" {
		if a, err := netip.ParseAddr(h); err == nil {
			p.APIServer = a.Unmap()
		}
	}
	for _, raw := range entries {
		s := strings.ToLower(strings.TrimSpace(raw))
		if s == "" {
			continue
		}
		host, port, err := splitHostPort(s)
		if err != nil {
			return nil, fmt.Errorf("%s: entry %q: %v", AllowedHostsKey, raw, err)
		}
		if rest, ok := strings.CutPrefix(host, "*."); ok {
			if rest == "" || strings.Contains(rest, "*") {
				return nil, fmt.Errorf("%s: entry %q: a wildcard must look like *.example.com", AllowedHostsKey, raw)
			}
			p.wild = append(p.wild, entry{host: "." + strings.TrimSuffix(rest, "."), port: port})
			continue
		}
		if strings.Contains(host, "*") {
			return nil, fmt.Errorf("%s: entry %q: a wildcard must look like *.example.com", AllowedHostsKey, raw)
		}
		h, _, err := canonicalHost(host)
		if err != nil {
			return nil, fmt.Errorf("%s: entry %q: %v", AllowedHostsKey, raw, err)
		}
		p.exact = append(p.exact, entry{host: h, port: port})
	}
	return p, nil
}

// AllowURL adds the host and port of an admin-configured URL (slack.url,
// trigger.url) as an exact entry; a URL that does not parse adds nothing.
func (p *Policy) AllowURL(raw string) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" {
		return
	}
	h, _, err := canonicalHost(strings.ToLower(u.Hostname()))
	if err != nil {
		return
	}
	p.exact = append(p.exact, entry{host: h, port: effectivePort(u)})
}

// SameHost says whether two URLs have the same canonical host and port.
func SameHost(a, b string) bool {
	ua, err1 := url.Parse(strings.TrimSpace(a))
	ub, err2 := url.Parse(strings.TrimSpace(b))
	if err1 != nil || err2 != nil || ua.Host == "" || ub.Host == "" {
		return false
	}
	ha, _, e1 := canonicalHost(strings.ToLower(ua.Hostname()))
	hb, _, e2 := canonicalHost(strings.ToLower(ub.Hostname()))
	return e1 == nil && e2 == nil && ha == hb && effectivePort(ua) == effectivePort(ub)
}

func effectivePort(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "https") {
		return "443"
	}
	return "80"
}

func splitHostPort(s string) (host, port string, err error) {
	if strings.HasPrefix(s, "[") || strings.Count(s, ":") == 1 {
		if h, p, err := net.SplitHostPort(s); err == nil {
			if n, err := strconv.Atoi(p); err != nil || n <= 0 || n > 65535 {
				return "", "", errors.New("bad port")
			}
			return h, p, nil
		}
		if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
			return s[1 : len(s)-1], "", nil
		}
		return "", "", errors.New("not a host or host:port")
	}
	return s, "", nil // a name, or an IPv6 address without brackets
}

// canonicalHost returns the canonical text of a lower-case host and, when
// it is an IP address, the address. Non-standard IPv4 forms (2130706433,
// 0x7f.1, 0177.0.0.1, 127.1) are refused: resolvers disagree on them.
func canonicalHost(h string) (string, netip.Addr, error) {
	h = strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), ".")
	if h == "" {
		return "", netip.Addr{}, errors.New("empty host")
	}
	if i := strings.IndexByte(h, '%'); i >= 0 { // an IPv6 zone
		return "", netip.Addr{}, errors.New("IPv6 zones are not allowed")
	}
	if a, err := netip.ParseAddr(h); err == nil {
		a = a.Unmap()
		return a.String(), a, nil
	}
	if looksNumeric(h) {
		return "", netip.Addr{}, errors.New("is a non-standard IPv4 form (decimal, octal, hexadecimal or shortened): write the address as a.b.c.d")
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
			return "", netip.Addr{}, errors.New("is not a valid host name")
		}
	}
	return h, netip.Addr{}, nil
}

// looksNumeric matches what inet_aton would read as an IPv4 address: one to
// four dot-separated numbers, decimal, octal (leading 0) or hexadecimal (0x).
func looksNumeric(h string) bool {
	parts := strings.Split(h, ".")
	if len(parts) > 4 {
		return false
	}
	for _, p := range parts {
		if p == "" {
			return false
		}
		if x, ok := strings.CutPrefix(p, "0x"); ok {
			if x == "" {
				continue // "0x" alone is 0 for inet_aton
			}
			if _, err := strconv.ParseUint(x, 16, 64); err != nil {
				return false
			}
			continue
		}
		if _, err := strconv.ParseUint(p, 10, 64); err != nil {
			return false
		}
	}
	return true
}

// decision is how a URL's host matched the policy.
type decision int

const (
	refused decision = iota
	matchedExact
	matchedWildcard
)

// match checks host and port (canonical) against the entries.
func (p *Policy) match(host, port string) decision {
	for _, e := range p.exact {
		if e.host == host && (e.port == "" || e.port == port) {
			return matchedExact
		}
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return refused // wildcards name DNS names only
	}
	for _, e := range p.wild {
		if strings.HasSuffix(host, e.host) && (e.port == "" || e.port == port) {
			return matchedWildcard
		}
	}
	return refused
}

// Check says whether rawURL may be requested: an absolute http(s) URL whose
// host matches an entry. It returns a *RefusedError otherwise. Addresses are
// checked again when dialling (see Transport).
func (p *Policy) Check(rawURL string) error {
	_, err := p.check(rawURL)
	return err
}

// Exact says whether rawURL's host matches an exact entry (admin-named
// hosts, whose replies may appear in messages).
func (p *Policy) Exact(rawURL string) bool {
	d, err := p.check(rawURL)
	return err == nil && d == matchedExact
}

func (p *Policy) check(rawURL string) (decision, error) {
	u, err := url.Parse(strings.TrimSpace(rawURL))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return refused, &RefusedError{Host: Host(rawURL), Reason: "is not in an absolute http:// or https:// URL"}
	}
	if u.User != nil {
		return refused, &RefusedError{Host: u.Hostname(), Reason: "is refused: URLs with user info are not allowed"}
	}
	host, _, err := canonicalHost(strings.ToLower(u.Hostname()))
	if err != nil {
		return refused, &RefusedError{Host: u.Hostname(), Reason: err.Error()}
	}
	port := effectivePort(u)
	d := p.match(host, port)
	if d == refused {
		return refused, &RefusedError{Host: hostPort(host, u.Port()), Reason: "is not in " + AllowedHostsKey}
	}
	return d, nil
}

func hostPort(host, port string) string {
	if port == "" {
		if strings.Contains(host, ":") {
			return "[" + host + "]"
		}
		return host
	}
	return net.JoinHostPort(host, port)
}

// Restricted says whether an address is one an author URL may reach only
// through an exact entry: loopback, link-local, private (RFC 1918, fc00::/7),
// unspecified, multicast, 0.0.0.0/8, carrier-grade NAT (100.64.0.0/10), an
// IPv4 address inside NAT64 (64:ff9b::/96) and the API server's address.
func (p *Policy) Restricted(a netip.Addr) (bool, string) {
	a = a.Unmap()
	if a.Is6() && nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	switch {
	case !a.IsValid():
		return true, "an invalid address"
	case p.APIServer.IsValid() && a == p.APIServer:
		return true, "the Kubernetes API server's address"
	case a.IsLoopback():
		return true, "a loopback address"
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return true, "a link-local address"
	case a.IsPrivate():
		return true, "a private address"
	case a.IsUnspecified():
		return true, "an unspecified address"
	case a.IsMulticast(), a.IsInterfaceLocalMulticast():
		return true, "a multicast address"
	case a.Is4() && (thisNet.Contains(a) || cgnat.Contains(a)):
		return true, "a reserved address"
	}
	return false, ""
}

var (
	nat64   = netip.MustParsePrefix("64:ff9b::/96")
	thisNet = netip.MustParsePrefix("0.0.0.0/8")
	cgnat   = netip.MustParsePrefix("100.64.0.0/10")
)

// dial resolves addr's host, checks every address against the policy and
// dials the first allowed one (the address checked is the address dialled).
func (p *Policy) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, &RefusedError{Host: addr, Reason: "is not a host:port"}
	}
	h, lit, err := canonicalHost(strings.ToLower(host))
	if err != nil {
		return nil, &RefusedError{Host: host, Reason: err.Error()}
	}
	d := p.match(h, port)
	if d == refused {
		return nil, &RefusedError{Host: hostPort(h, port), Reason: "is not in " + AllowedHostsKey}
	}
	var addrs []netip.Addr
	if lit.IsValid() {
		addrs = []netip.Addr{lit}
	} else {
		var res interface {
			LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
		} = net.DefaultResolver
		if p.Resolver != nil {
			res = p.Resolver
		}
		ips, err := res.LookupIPAddr(ctx, h)
		if err != nil {
			return nil, fmt.Errorf("cannot resolve %s", h)
		}
		for _, ip := range ips {
			if a, ok := netip.AddrFromSlice(ip.IP); ok {
				addrs = append(addrs, a.Unmap())
			}
		}
	}
	dialer := &net.Dialer{Timeout: DefaultTimeout, Control: p.control(d)}
	var lastErr error
	for _, a := range addrs {
		if bad, reason := p.Restricted(a); bad && d != matchedExact {
			lastErr = &RefusedError{Host: hostPort(h, port), Reason: fmt.Sprintf("resolves to %s, %s, which only an exact %s entry may reach", a, reason, AllowedHostsKey)}
			continue
		}
		conn, err := dialer.DialContext(ctx, network, netip.AddrPortFrom(a, mustPort(port)).String())
		if err == nil {
			return conn, nil
		}
		lastErr = err
	}
	if lastErr == nil {
		lastErr = &RefusedError{Host: hostPort(h, port), Reason: "resolves to no address"}
	}
	return nil, lastErr
}

func mustPort(s string) uint16 {
	n, _ := strconv.Atoi(s)
	return uint16(n)
}

// control re-checks the address at the socket (defence in depth: the
// address given to connect(2) is the one checked).
func (p *Policy) control(d decision) func(network, address string, _ syscall.RawConn) error {
	return func(_, address string, _ syscall.RawConn) error {
		if d == matchedExact {
			return nil
		}
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return &RefusedError{Host: address, Reason: "is not an IP address and port"}
		}
		if bad, reason := p.Restricted(ap.Addr()); bad {
			return &RefusedError{Host: ap.Addr().String(), Reason: "is " + reason + ", which only an exact " + AllowedHostsKey + " entry may reach"}
		}
		return nil
	}
}

// httpClient is the HTTP client of requests under this policy: no proxy (the
// address checked must be the address reached), every dial checked, no
// connection reuse across requests, and redirects followed only to the same
// host, itself checked again.
func (p *Policy) httpClient(timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           p.dial,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		DisableKeepAlives:     true,
		MaxIdleConns:          1,
	}
	return &http.Client{Transport: wrap(tr), CheckRedirect: p.checkRedirect}
}

func (p *Policy) checkRedirect(req *http.Request, via []*http.Request) error {
	if err := sameHostRedirect(req, via); err != nil {
		return err
	}
	return p.Check(req.URL.String())
}

// sameHostRedirect refuses a redirect to another host (headers such as the
// trigger's would follow it) and more than 5 redirects.
func sameHostRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("stopped after 5 redirects")
	}
	if !SameHost(req.URL.String(), via[0].URL.String()) {
		return &RefusedError{Host: req.URL.Host, Reason: "is refused as a redirect target: redirects to another host are not followed"}
	}
	return nil
}
