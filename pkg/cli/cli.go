// Package cli is the cicdstatemgr command line, flag-compatible with the
// original Python tool: one operation per call, stdout carries only the id
// (--init-new) or the value (--get), errors are one line on stderr and a
// non-zero exit.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/gate"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/localfiles"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/tmpl"
)

// Env names the environment variables the original reads.
const (
	EnvConfigPath    = "CICDSTATEMGR_CONFIG_PATH"
	EnvSecretsPath   = "CICDSTATEMGR_SECRETS_PATH"
	EnvBasesDir      = "CICDSTATEMGR_BASES_DIR_PATH"
	EnvAppConfigPath = "CICDSTATEMGR_INIT_APP_CONFIG_PATH"
	EnvContextDataID = "CICDSTATEMGR_CONTEXT_DATA_ID"
	// EnvNamespace is ours: the Kubernetes namespace whose contexts the CLI
	// works on (contexts belong to a namespace, docs/security.md).
	EnvNamespace = "CICDSTATEMGR_NAMESPACE"
)

// DefaultNamespace is the namespace of the CLI without --namespace: the
// original's invocations work unchanged, on the contexts of "default".
const DefaultNamespace = "default"

// Options are the parsed flags.
type Options struct {
	LogLevel          string
	Config, Secrets   string
	InitNew           string
	InitContextName   string
	InitBasesDir      string
	InitAppConfigFile string
	ID                string
	Namespace         string
	TmplCtxVars       []string
	Load              bool
	Get               string
	Sets              []string
	PreSetForceReload bool
	HandleEvent       string
	Generate          string
	TTL               time.Duration
	Timeout           time.Duration
}

type listFlag struct{ items *[]string }

func (l listFlag) String() string     { return "" }
func (l listFlag) Set(s string) error { *l.items = append(*l.items, s); return nil }

// EventRunnerFactory builds the handle-event runner for the CLI; nil means
// handle-event is unavailable.
var EventRunnerFactory func(st *store.Store, r *tmpl.Env, log *slog.Logger) engine.EventRunner

func newFlagSet(o *Options, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("cicdstatemgr", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.LogLevel, "log-level", "WARNING", "log level: DEBUG, INFO, WARNING, ERROR")
	fs.StringVar(&o.LogLevel, "l", "WARNING", "shorthand for --log-level")
	fs.StringVar(&o.Config, "config", "", "path to config.yaml (env "+EnvConfigPath+")")
	fs.StringVar(&o.Secrets, "secrets", "", "path to secrets.yaml (env "+EnvSecretsPath+")")
	fs.StringVar(&o.InitNew, "init-new", "", "create a new cicd context with this id; prints the id")
	fs.StringVar(&o.InitContextName, "init-cicd-context-name", engine.DefaultCicdContext, "which cicd-contexts.<name> block to use")
	fs.StringVar(&o.InitBasesDir, "init-bases-dir", "", "directory of the bases: files (env "+EnvBasesDir+")")
	fs.StringVar(&o.InitAppConfigFile, "init-app-config-file", "", "app pipeline config YAML (env "+EnvAppConfigPath+")")
	fs.StringVar(&o.ID, "id", "", "cicd context data id (env "+EnvContextDataID+")")
	namespaceFlag(fs, &o.Namespace)
	fs.Var(listFlag{&o.TmplCtxVars}, "tmpl-ctx-var", "K=V template context entry, V a path or a literal (repeatable)")
	fs.BoolVar(&o.Load, "load", false, "load the context from Redis and write the local files")
	fs.StringVar(&o.Get, "get", "", "print the value at this path ('$' = whole document as JSON)")
	fs.Var(listFlag{&o.Sets}, "set", "path=value, '|' separates several, '\\|' is a literal '|' (repeatable); value file://PATH loads a file")
	fs.BoolVar(&o.PreSetForceReload, "pre-set-force-reload", false, "accepted for compatibility: every read comes from Redis")
	fs.StringVar(&o.HandleEvent, "handle-event", "", "pipeline=event: run that event's handlers")
	fs.StringVar(&o.Generate, "generate", "", "path of a generator object to run")
	fs.DurationVar(&o.TTL, "ttl", 0, "with --init-new: expire the context after this long (e.g. 720h); 0 = never")
	fs.DurationVar(&o.Timeout, "timeout", 30*time.Second, "give up after this long")
	return fs
}

// Main runs the CLI and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "decide":
			return Decide(args[1:], stdout, stderr)
		case "migrate":
			return Migrate(args[1:], stdout, stderr)
		case "history":
			return History(args[1:], stdout, stderr)
		}
	}
	var o Options
	fs := newFlagSet(&o, stderr)
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	applyEnv(&o)
	// go-redis logs every failed dial; our error line says it once.
	redis.SetLogger(quietRedisLogger{})
	log := newLogger(o.LogLevel, stderr)
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	if err := run(ctx, o, stdout, stderr, log); err != nil {
		fmt.Fprintln(stderr, errorLine(err))
		return 1
	}
	return 0
}

type quietRedisLogger struct{}

func (quietRedisLogger) Printf(context.Context, string, ...any) {}

func errorLine(err error) string {
	e := engine.AsError(err, "Error")
	msg := strings.ReplaceAll(e.Message, "\n", " ")
	return fmt.Sprintf("cicdstatemgr: %s: %s", e.Reason, msg)
}

func applyEnv(o *Options) {
	fallback := func(v *string, env string) {
		if *v == "" {
			*v = os.Getenv(env)
		}
	}
	fallback(&o.Config, EnvConfigPath)
	fallback(&o.Secrets, EnvSecretsPath)
	fallback(&o.InitBasesDir, EnvBasesDir)
	fallback(&o.InitAppConfigFile, EnvAppConfigPath)
	fallback(&o.ID, EnvContextDataID)
	o.Namespace = namespaceOrDefault(o.Namespace)
}

func newLogger(level string, w io.Writer) *slog.Logger {
	var l slog.Level
	switch strings.ToUpper(level) {
	case "DEBUG":
		l = slog.LevelDebug
	case "INFO":
		l = slog.LevelInfo
	case "ERROR", "CRITICAL":
		l = slog.LevelError
	default:
		l = slog.LevelWarn
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

func run(ctx context.Context, o Options, stdout, stderr io.Writer, log *slog.Logger) error {
	if o.Config == "" {
		return engine.Errorf(engine.ReasonInvalidParams, "--config <path> is required (or set %s)", EnvConfigPath)
	}
	cfg, err := config.Load(o.Config, o.Secrets)
	if err != nil {
		return engine.Errorf(engine.ReasonInvalidConfig, "%v", err)
	}
	req, err := buildRequest(o, log)
	if err != nil {
		return err
	}
	if req == nil {
		return nil // no operation asked for, as the original
	}
	req.Config = cfg
	if req.Op != engine.OpGet {
		// who wrote, for the context's history; a get writes nothing and
		// skips the user lookup (/etc/passwd)
		req.Who = cliWho()
	}
	rc, err := cfg.Redis()
	if err != nil {
		return engine.Errorf(engine.ReasonInvalidConfig, "%v", err)
	}
	if req.TTL == 0 {
		req.TTL = rc.TTL
	}
	budgets := cfg.Budgets()
	so := storeOptions(rc)
	so.MaxContextBytes = budgets.ContextBytes
	st, err := store.New(so)
	if err != nil {
		return engine.Errorf(engine.ReasonInvalidConfig, "%v", err)
	}
	defer st.Close()
	templates := tmpl.New(budgets.TemplateOptions())
	eng := &engine.Engine{Store: st, Templates: templates, Log: log}
	if EventRunnerFactory != nil {
		eng.Handlers = EventRunnerFactory(st, templates, log)
	}
	out, err := eng.Do(ctx, *req)
	if err != nil {
		return err
	}
	if out.Waiting != "" {
		if err := waitForDecision(engine.WithConfig(ctx, cfg), eng, st, *req, out.Waiting, stderr); err != nil {
			return err
		}
	}
	switch req.Op {
	case engine.OpInit:
		fmt.Fprintln(stdout, req.ID)
	case engine.OpGet:
		if v, _ := out.Result("value"); v != "" {
			fmt.Fprintln(stdout, v)
		}
		return nil
	}
	return writeLocalFiles(cfg, req.ID, out.Doc)
}

func writeLocalFiles(cfg *config.Config, id string, doc *document.Map) error {
	if doc == nil {
		return nil
	}
	cwd, err := os.Getwd()
	if err != nil {
		return err
	}
	files, err := cfg.LocalFiles(cwd)
	if err != nil {
		return engine.Errorf(engine.ReasonInvalidConfig, "%v", err)
	}
	return localfiles.Write(files, id, doc)
}

func storeOptions(rc config.Redis) store.Options {
	return rc.StoreOptions()
}

// buildRequest picks the one operation the flags ask for, in the original's
// order of precedence: init-new, load, get, generate, handle-event, set.
func buildRequest(o Options, log *slog.Logger) (*engine.Request, error) {
	vars, err := tmpl.ParseVars(o.TmplCtxVars)
	if err != nil {
		return nil, engine.Errorf(engine.ReasonInvalidParams, "%v", err)
	}
	req := &engine.Request{ID: o.ID, Namespace: o.Namespace, Vars: vars}
	var event *engine.Event
	if o.HandleEvent != "" {
		if event, err = engine.ParseEvent(o.HandleEvent); err != nil {
			return nil, err
		}
	}
	switch {
	case o.InitNew != "":
		req.Op, req.ID = engine.OpInit, o.InitNew
		req.CicdContext, req.Event, req.TTL = o.InitContextName, event, o.TTL
		if o.InitAppConfigFile == "" {
			return nil, engine.Errorf(engine.ReasonInvalidParams, "--init-new needs --init-app-config-file <path> (or set %s)", EnvAppConfigPath)
		}
		if req.AppConfig, err = os.ReadFile(o.InitAppConfigFile); err != nil {
			return nil, engine.Errorf(engine.ReasonInvalidParams, "cannot read the app config: %v", err)
		}
		req.Bases = dirBases(o.InitBasesDir)
	case o.Load:
		req.Op, req.Event = engine.OpLoad, event
	case o.Get != "":
		req.Op = engine.OpGet
		req.Gets = []engine.GetSpec{{Name: "value", Expr: o.Get}}
		return requireID(req, nil)
	case o.Generate != "":
		req.Op, req.Generator = engine.OpGenerate, o.Generate
		return requireID(req, nil)
	case event != nil:
		req.Op, req.Event = engine.OpHandleEvent, event
	case len(o.Sets) > 0:
		req.Op = engine.OpSet
	default:
		return nil, nil
	}
	sets, err := parseSets(o.Sets, log)
	if err != nil {
		return nil, err
	}
	return requireID(req, sets)
}

func requireID(req *engine.Request, sets []document.Assignment) (*engine.Request, error) {
	if strings.TrimSpace(req.ID) == "" {
		return nil, engine.Errorf(engine.ReasonInvalidParams, "--id <id> is required for %s (or set %s)", req.Op, EnvContextDataID)
	}
	req.Sets = sets
	return req, nil
}

func dirBases(dir string) engine.BaseLoader {
	if dir == "" {
		return nil
	}
	return func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no such file in the bases directory %s", dir)
		}
		return b, err
	}
}

// parseSets splits every --set on '|' (the original's multi-pair form, see
// splitSetPairs) and loads file:// values. Pairs without '=' or with an empty
// side are skipped with a warning, as the original does.
func parseSets(items []string, log *slog.Logger) ([]document.Assignment, error) {
	var out []document.Assignment
	for _, item := range items {
		for _, pair := range splitSetPairs(item) {
			a, err := document.ParseAssignment(pair, false)
			if err != nil {
				log.Warn("set: invalid path=value pair skipped", "error", err)
				continue
			}
			if s, ok := a.Value.(string); ok && strings.HasPrefix(s, "file://") {
				if a.Value, err = loadFileValue(strings.TrimPrefix(s, "file://")); err != nil {
					return nil, engine.Errorf(engine.ReasonInvalidParams, "set %s: %v", a.Path, err)
				}
			}
			out = append(out, a)
		}
	}
	return out, nil
}

// splitSetPairs splits one --set argument into path=value pairs on '|', as
// the original does, with one addition so that a value can hold a '|': a
// backslash before a '|' escapes it. In a run of backslashes just before a
// '|', each "\\" stands for one backslash and an odd one left over makes the
// '|' literal:
//
//	a={{ x\|length }}  ->  a={{ x|length }}   (one pair)
//	a=x\\|b=y          ->  a=x\ and b=y        (two pairs)
//	a=x\\\|y           ->  a=x\|y              (one pair)
//
// Backslashes not followed by '|' are kept as they are, so an argument
// without "\|" splits exactly as in the original.
func splitSetPairs(item string) []string {
	if !strings.Contains(item, "|") {
		return []string{item}
	}
	var out []string
	var cur strings.Builder
	for i := 0; i < len(item); {
		switch c := item[i]; c {
		case '\\':
			j := i
			for j < len(item) && item[j] == '\\' {
				j++
			}
			n := j - i
			if j < len(item) && item[j] == '|' {
				cur.WriteString(strings.Repeat("\\", n/2))
				if n%2 == 1 {
					cur.WriteByte('|')
				} else {
					out = append(out, cur.String())
					cur.Reset()
				}
				i = j + 1
				continue
			}
			cur.WriteString(item[i:j])
			i = j
		case '|':
			out = append(out, cur.String())
			cur.Reset()
			i++
		default:
			cur.WriteByte(c)
			i++
		}
	}
	return append(out, cur.String())
}

// loadFileValue reads a file:// value as the original does: JSON if it
// parses, else YAML (one document, as PyYAML's yaml.load reads it; an empty
// file is null), else the raw text. A missing file leaves the literal
// file:// string.
func loadFileValue(path string) (any, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "file://" + path, nil
	}
	if err != nil {
		return nil, err
	}
	if v, err := document.ParseJSON(b); err == nil {
		return v, nil
	}
	if v, err := document.ParseYAML(b); err == nil {
		return v, nil
	}
	return string(b), nil
}

// waitForDecision does what the controller does at an approval gate: it waits
// (within --timeout) until someone decides, then records the decision in the
// state. Decisions come from Slack through the controller, from `cicdstatemgr
// decide`, or from the controller's HTTP endpoint.
func waitForDecision(ctx context.Context, eng *engine.Engine, st *store.Store, req engine.Request, key string, stderr io.Writer) error {
	gates := gate.New(st)
	fmt.Fprintf(stderr, "cicdstatemgr: waiting for a decision (until --timeout): cicdstatemgr decide --namespace %s --id %s --option <value>\n", req.Namespace, req.ID)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var last gate.Gate
	timedOut := func() error {
		_ = gates.Cancel(context.Background(), key)
		return engine.Errorf("GateTimedOut", "nobody decided within --timeout; the gate is closed (options: %s)", optionValues(last))
	}
	for {
		pending, decision, err := gates.Get(ctx, key)
		if err != nil {
			if ctx.Err() != nil {
				// --timeout ran out during the read itself
				return timedOut()
			}
			return err
		}
		last = pending
		if decision != nil {
			fmt.Fprintf(stderr, "cicdstatemgr: %s chose %s\n", decision.ChosenBy, decision.Choice)
			return eng.RecordDecision(ctx, store.Ref(req.Namespace, req.ID), key+"/choice", pending, *decision)
		}
		select {
		case <-ctx.Done():
			return timedOut()
		case <-tick.C:
		}
	}
}

func optionValues(p gate.Gate) string {
	vals := make([]string, len(p.Options))
	for i, o := range p.Options {
		vals[i] = o.Value
	}
	return strings.Join(vals, ", ")
}

// namespaceFlag registers --namespace.
func namespaceFlag(fs *flag.FlagSet, v *string) {
	fs.StringVar(v, "namespace", "", "the namespace whose contexts to use (env "+EnvNamespace+"; default "+DefaultNamespace+")")
}

// namespaceOrDefault applies CICDSTATEMGR_NAMESPACE, then the default.
func namespaceOrDefault(ns string) string {
	if ns == "" {
		ns = os.Getenv(EnvNamespace)
	}
	if ns == "" {
		ns = DefaultNamespace
	}
	return ns
}

// parseFlags parses args; when the command should stop (help, a bad flag, a
// stray argument) ok is false and code is its exit code.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "cicdstatemgr: unexpected argument %q\n", fs.Arg(0))
		return 2, false
	}
	return 0, true
}
