// Package config reads the original's config.yaml and secrets.yaml: the
// settings of the Redis store, the local output files, the HTTP handlers and
// the body templates, plus free-form data templates reach as configData.
package config

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/httpclient"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

// RootKey is the top-level key of both files.
const RootKey = "cicdstatemgr"

// Config is a parsed config.yaml with its secrets.yaml.
type Config struct {
	// Data is the whole cicdstatemgr block of config.yaml (templates see it as
	// configData). Datasource credentials from the secrets are not in it.
	Data *document.Map
	// Secrets is the cicdstatemgr block of secrets.yaml (templates see it as
	// secretData, in trigger headers only).
	Secrets *document.Map
	// datasources is config's datasources with the secrets' merged in.
	datasources *document.Map
	// budgets is the parsed budgets block (nil: defaults).
	budgets *Budgets
	// cloudEvents is the parsed cloudEvents block (nil: none sent).
	cloudEvents *CloudEvents
}

// Parse reads config.yaml and secrets.yaml texts. Secrets may be empty.
func Parse(configYAML, secretsYAML []byte) (*Config, error) {
	data, err := rootBlock(configYAML, "config.yaml")
	if err != nil {
		return nil, err
	}
	secrets, err := rootBlock(secretsYAML, "secrets.yaml")
	if err != nil {
		return nil, err
	}
	ds := mapAt(data, "datasources")
	sds := mapAt(secrets, "datasources")
	merged, err := document.Merge(ds, sds)
	if err != nil {
		return nil, fmt.Errorf("secrets.yaml datasources: %w", err)
	}
	budgets, err := parseBudgets(data)
	if err != nil {
		return nil, err
	}
	events, err := parseCloudEvents(data)
	if err != nil {
		return nil, err
	}
	return &Config{Data: data, Secrets: secrets, datasources: merged, budgets: &budgets, cloudEvents: &events}, nil
}

// Load reads both files from disk.
func Load(configPath, secretsPath string) (*Config, error) {
	c, err := os.ReadFile(configPath)
	if err != nil {
		return nil, fmt.Errorf("cannot read config file: %w", err)
	}
	var s []byte
	if secretsPath != "" {
		s, err = os.ReadFile(secretsPath)
		if err != nil {
			return nil, fmt.Errorf("cannot read secrets file: %w", err)
		}
	}
	return Parse(c, s)
}

func rootBlock(text []byte, name string) (*document.Map, error) {
	if len(strings.TrimSpace(string(text))) == 0 {
		return document.NewMap(), nil
	}
	m, err := document.ParseYAMLMap(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	v, ok := m.Get(RootKey)
	if !ok || v == nil {
		return nil, fmt.Errorf("%s: missing the top-level key %q", name, RootKey)
	}
	block, ok := v.(*document.Map)
	if !ok {
		return nil, fmt.Errorf("%s: %q must be a map, not a %s", name, RootKey, document.TypeName(v))
	}
	return block, nil
}

func mapAt(m *document.Map, path string) *document.Map {
	v, ok, _ := document.Lookup(m, path)
	if mm, isMap := v.(*document.Map); ok && isMap {
		return mm
	}
	return document.NewMap()
}

// MapAt returns the map at a dotted path of the config data (empty if absent).
func (c *Config) MapAt(path string) *document.Map { return mapAt(c.Data, path) }

// StringAt returns the string at a dotted path of the config data.
func (c *Config) StringAt(path string) string {
	v, ok, _ := document.Lookup(c.Data, path)
	if !ok || v == nil {
		return ""
	}
	if s, isStr := v.(string); isStr {
		return s
	}
	return fmt.Sprint(v)
}

// SecretStringAt returns the string at a dotted path of the secrets.
func (c *Config) SecretStringAt(path string) string {
	v, ok, _ := document.Lookup(c.Secrets, path)
	if !ok || v == nil {
		return ""
	}
	if s, isStr := v.(string); isStr {
		return s
	}
	return fmt.Sprint(v)
}

// Redis is the connection settings of the primary store.
type Redis struct {
	Addr                  string
	DB                    int
	Username, Password    string
	TLS                   bool
	TLSCAFile             string
	TLSInsecureSkipVerify bool
	TLSServerName         string
	KeyPrefix             string
	// TTL, when set, makes contexts expire that long after init.
	TTL time.Duration

	// Topology is "single" (host, port), "sentinel" (the sentinel block) or
	// "cluster" (the cluster block).
	Topology string
	// Sentinel: the primary named MasterName as the sentinels at SentinelAddrs
	// know it; SentinelUsername and SentinelPassword authenticate to the
	// sentinels (Username and Password to the Redis nodes).
	SentinelMasterName                 string
	SentinelAddrs                      []string
	SentinelUsername, SentinelPassword string
	// ClusterAddrs are seed nodes of a Redis Cluster.
	ClusterAddrs []string
	// MinReplicaAcks (nil: the store's default, 1 with Sentinel, else 0) and
	// ReplicaAckTimeout (0: the store's default) are minReplicaAcks and
	// replicaAckTimeout.
	MinReplicaAcks    *int
	ReplicaAckTimeout time.Duration
}

// StoreOptions are the store settings of r.
func (r Redis) StoreOptions() store.Options {
	return store.Options{
		Addr: r.Addr, DB: r.DB, Username: r.Username, Password: r.Password,
		TLS: r.TLS, TLSCAFile: r.TLSCAFile, TLSInsecureSkipVerify: r.TLSInsecureSkipVerify,
		TLSServerName: r.TLSServerName, KeyPrefix: r.KeyPrefix,
		SentinelMasterName: r.SentinelMasterName, SentinelAddrs: r.SentinelAddrs,
		SentinelUsername: r.SentinelUsername, SentinelPassword: r.SentinelPassword,
		ClusterAddrs:   r.ClusterAddrs,
		MinReplicaAcks: r.MinReplicaAcks, ReplicaAckTimeout: r.ReplicaAckTimeout,
	}
}

// Redis returns the redis datasource settings. It is an error when no redis
// datasource is configured or another datasource is the primary: this
// implementation keeps documents in Redis only.
func (c *Config) Redis() (Redis, error) {
	r, ok := c.datasources.GetMap("redis")
	if !ok {
		return Redis{}, fmt.Errorf("config.yaml: no datasources.redis block: a redis datasource is required")
	}
	for _, name := range c.datasources.Keys() {
		ds, _ := c.datasources.GetMap(name)
		if name != "redis" && ds != nil {
			if p, _ := ds.Get("isPrimary"); p == true {
				return Redis{}, fmt.Errorf("config.yaml: datasource %q is marked isPrimary, but only redis can be the primary store", name)
			}
		}
	}
	host := str(r, "host")
	if host == "" {
		host = "127.0.0.1"
	}
	port := str(r, "port")
	if port == "" {
		port = "6379"
	}
	out := Redis{
		Addr:      host + ":" + port,
		Username:  str(r, "username"),
		Password:  str(r, "password"),
		KeyPrefix: str(r, "keyPrefix"),
	}
	if db := str(r, "db"); db != "" {
		n, err := strconv.Atoi(db)
		if err != nil {
			return Redis{}, fmt.Errorf("config.yaml: datasources.redis.db %q is not a number", db)
		}
		out.DB = n
	}
	if ttl := str(r, "ttl"); ttl != "" {
		d, err := parseDuration(ttl)
		if err != nil {
			return Redis{}, fmt.Errorf("config.yaml: datasources.redis.ttl: %w", err)
		}
		out.TTL = d
	}
	if t, ok := r.GetMap("tls"); ok {
		out.TLS = str(t, "enabled") != "false"
		out.TLSCAFile = str(t, "caFile")
		out.TLSInsecureSkipVerify = str(t, "insecureSkipVerify") == "true"
		out.TLSServerName = str(t, "serverName")
	} else if v, _ := r.Get("tls"); v == true {
		out.TLS = true
	}
	if err := parseTopology(r, &out); err != nil {
		return Redis{}, fmt.Errorf("config.yaml: datasources.redis.%w", err)
	}
	return out, nil
}

// parseTopology reads the sentinel and cluster blocks and the replica
// acknowledgement settings of datasources.redis. Errors start with the key
// (after "datasources.redis.").
func parseTopology(r *document.Map, out *Redis) error {
	out.Topology = "single"
	sv, hasSentinel := r.Get("sentinel")
	cv, hasCluster := r.Get("cluster")
	hasSentinel = hasSentinel && sv != nil
	hasCluster = hasCluster && cv != nil
	if hasSentinel && hasCluster {
		return fmt.Errorf("sentinel and cluster are both set: choose one topology")
	}
	if hasSentinel {
		m, ok := sv.(*document.Map)
		if !ok {
			return fmt.Errorf("sentinel must be a map {masterName, addresses}, not a %s", document.TypeName(sv))
		}
		if err := onlyKeys(m, "sentinel", "masterName", "addresses", "username", "password"); err != nil {
			return err
		}
		out.Topology = "sentinel"
		out.SentinelMasterName = str(m, "masterName")
		if out.SentinelMasterName == "" {
			return fmt.Errorf("sentinel.masterName is missing (the name the sentinels monitor the primary under)")
		}
		addrs, err := addrList(m, "sentinel.addresses")
		if err != nil {
			return err
		}
		out.SentinelAddrs = addrs
		out.SentinelUsername, out.SentinelPassword = str(m, "username"), str(m, "password")
	}
	if hasCluster {
		m, ok := cv.(*document.Map)
		if !ok {
			return fmt.Errorf("cluster must be a map {addresses}, not a %s", document.TypeName(cv))
		}
		if err := onlyKeys(m, "cluster", "addresses"); err != nil {
			return err
		}
		out.Topology = "cluster"
		addrs, err := addrList(m, "cluster.addresses")
		if err != nil {
			return err
		}
		out.ClusterAddrs = addrs
		if out.DB != 0 {
			return fmt.Errorf("db: %d is set, but a Redis Cluster has only db 0", out.DB)
		}
	}
	if out.Topology != "single" {
		for _, k := range []string{"host", "port"} {
			if v, ok := r.Get(k); ok && v != nil {
				return fmt.Errorf("%s is set together with %s: the %s block names the servers, remove %s", k, out.Topology, out.Topology, k)
			}
		}
	}
	if v, ok := r.Get("minReplicaAcks"); ok && v != nil {
		n, err := strconv.Atoi(str(r, "minReplicaAcks"))
		if err != nil || n < 0 {
			return fmt.Errorf("minReplicaAcks %q is not a number >= 0", str(r, "minReplicaAcks"))
		}
		out.MinReplicaAcks = &n
	}
	if t := str(r, "replicaAckTimeout"); t != "" {
		d, err := time.ParseDuration(t)
		if err != nil || d < time.Millisecond {
			return fmt.Errorf("replicaAckTimeout %q is not a duration of at least 1ms (like 500ms)", t)
		}
		out.ReplicaAckTimeout = d
	}
	return nil
}

func onlyKeys(m *document.Map, block string, known ...string) error {
	for _, k := range m.Keys() {
		ok := false
		for _, kk := range known {
			ok = ok || k == kk
		}
		if !ok {
			return fmt.Errorf("%s.%s is not a known setting (known: %s)", block, k, strings.Join(known, ", "))
		}
	}
	return nil
}

// addrList reads a non-empty list of host:port strings.
func addrList(m *document.Map, path string) ([]string, error) {
	k := path[strings.LastIndex(path, ".")+1:]
	v, _ := m.Get(k)
	l, ok := v.([]any)
	if !ok || len(l) == 0 {
		return nil, fmt.Errorf("%s must be a non-empty list of host:port", path)
	}
	out := make([]string, 0, len(l))
	for _, e := range l {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("%s: %v is not a host:port string", path, e)
		}
		host, port, err := net.SplitHostPort(s)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("%s: %q is not host:port", path, s)
		}
		if _, err := strconv.Atoi(port); err != nil {
			return nil, fmt.Errorf("%s: %q has a port that is not a number", path, s)
		}
		out = append(out, s)
	}
	return out, nil
}

func parseDuration(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is neither seconds nor a duration like 72h", s)
	}
	return d, nil
}

func str(m *document.Map, k string) string {
	v, ok := m.Get(k)
	if !ok || v == nil {
		return ""
	}
	if s, isStr := v.(string); isStr {
		return s
	}
	return fmt.Sprint(v)
}

// LocalFile is a non-primary datasource: an output file the CLI writes.
type LocalFile struct {
	Kind            string // yamlfile, jsonfile, shellfile, idfile
	Path            string
	ExcludeKeyNames []string
}

// LocalFiles returns the local output files in config order. Relative paths
// are resolved against baseDir (the CLI's working directory).
func (c *Config) LocalFiles(baseDir string) ([]LocalFile, error) {
	var out []LocalFile
	for _, name := range c.datasources.Keys() {
		if name == "redis" {
			continue
		}
		ds, ok := c.datasources.GetMap(name)
		if !ok {
			continue
		}
		switch name {
		case "yamlfile", "jsonfile", "shellfile", "idfile":
		default:
			return nil, fmt.Errorf("config.yaml: unknown datasource %q (known: redis, yamlfile, jsonfile, shellfile, idfile)", name)
		}
		p := str(ds, "path")
		if p == "" {
			return nil, fmt.Errorf("config.yaml: datasources.%s.path is required", name)
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(baseDir, p)
		}
		lf := LocalFile{Kind: name, Path: p}
		if ex, ok := ds.Get("excludeKeyNames"); ok {
			if l, isList := ex.([]any); isList {
				for _, e := range l {
					lf.ExcludeKeyNames = append(lf.ExcludeKeyNames, fmt.Sprint(e))
				}
			}
		}
		out = append(out, lf)
	}
	return out, nil
}

// SecretValues lists the secret strings, longest first, so that they can be
// redacted from anything that leaves the process.
func (c *Config) SecretValues() []string {
	seen := map[string]bool{}
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch t := v.(type) {
		case *document.Map:
			t.Range(func(k string, c any) bool {
				// a login name is not a secret, and redacting it would mangle
				// ordinary text such as a user agent
				if k != "username" {
					walk(c)
				}
				return true
			})
		case []any:
			for _, e := range t {
				walk(e)
			}
		case string:
			if len(t) >= 4 && !seen[t] {
				seen[t] = true
				out = append(out, t)
			}
		case nil, bool:
		default:
			if s := fmt.Sprint(t); len(s) >= 4 && !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	walk(c.Secrets)
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// Redact replaces every secret value in s.
func (c *Config) Redact(s string) string {
	for _, v := range c.SecretValues() {
		s = strings.ReplaceAll(s, v, "[REDACTED]")
	}
	return s
}

// AllowedHosts returns the entries of http.allowedHosts (host, host:port,
// *.domain or *.domain:port), the hosts that handler URLs written by pipeline
// authors may reach besides those of slack.url and trigger.url.
func (c *Config) AllowedHosts() ([]string, error) {
	v, ok, _ := document.Lookup(c.Data, "http.allowedHosts")
	if !ok || v == nil {
		return nil, nil
	}
	l, isList := v.([]any)
	if !isList {
		return nil, fmt.Errorf("config.yaml: %s must be a list of hosts (host, host:port, *.domain), not a %s", httpclient.AllowedHostsKey, document.TypeName(v))
	}
	out := make([]string, 0, len(l))
	for i, e := range l {
		s, isStr := e.(string)
		if !isStr {
			return nil, fmt.Errorf("config.yaml: %s[%d] must be a string, not a %s", httpclient.AllowedHostsKey, i, document.TypeName(e))
		}
		out = append(out, s)
	}
	return out, nil
}

// HTTPPolicy is where URLs written by pipeline authors may go: the entries
// of http.allowedHosts plus the hosts (and ports) of slack.url and
// trigger.url.
func (c *Config) HTTPPolicy() (*httpclient.Policy, error) {
	hosts, err := c.AllowedHosts()
	if err != nil {
		return nil, err
	}
	p, err := httpclient.NewPolicy(hosts)
	if err != nil {
		return nil, fmt.Errorf("config.yaml: %w", err)
	}
	p.AllowURL(c.StringAt("slack.url"))
	p.AllowURL(c.StringAt("trigger.url"))
	return p, nil
}
