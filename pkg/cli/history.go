package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/history"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/tmpl"
)

// historyOptions are the flags of `cicdstatemgr history`.
type historyOptions struct {
	Config, Secrets string
	ID, Namespace   string
	Path            string
	Limit           int
	Timeout         time.Duration
}

// History runs `cicdstatemgr history --config C --secrets S --id ID [--namespace NS]
// [--path P] [--limit N]`: it prints the history of the cicd context ID
// (docs/history.md) as a JSON array, newest entry first: every entry, or those
// that changed P (or a path above or below it), at most N.
func History(args []string, stdout, stderr io.Writer) int {
	var o historyOptions
	fs := flag.NewFlagSet("cicdstatemgr history", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Config, "config", "", "path to config.yaml (env "+EnvConfigPath+")")
	fs.StringVar(&o.Secrets, "secrets", "", "path to secrets.yaml (env "+EnvSecretsPath+")")
	fs.StringVar(&o.ID, "id", "", "cicd context data id (env "+EnvContextDataID+")")
	namespaceFlag(fs, &o.Namespace)
	fs.StringVar(&o.Path, "path", "", "only the entries that changed this dotted path (or a path above or below it)")
	fs.IntVar(&o.Limit, "limit", 0, "at most this many entries, newest first (0: all that are kept)")
	fs.DurationVar(&o.Timeout, "timeout", 30*time.Second, "give up after this long")
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	if o.Config == "" {
		o.Config = os.Getenv(EnvConfigPath)
	}
	if o.Secrets == "" {
		o.Secrets = os.Getenv(EnvSecretsPath)
	}
	if o.ID == "" {
		o.ID = os.Getenv(EnvContextDataID)
	}
	o.Namespace = namespaceOrDefault(o.Namespace)
	redis.SetLogger(quietRedisLogger{})
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	text, err := readHistory(ctx, o)
	if err != nil {
		fmt.Fprintln(stderr, errorLine(err))
		return 1
	}
	fmt.Fprintln(stdout, text)
	return 0
}

func readHistory(ctx context.Context, o historyOptions) (string, error) {
	if o.Config == "" {
		return "", engine.Errorf(engine.ReasonInvalidParams, "--config <path> is required (or set %s)", EnvConfigPath)
	}
	if o.ID == "" {
		return "", engine.Errorf(engine.ReasonInvalidParams, "--id <id> is required for history (or set %s)", EnvContextDataID)
	}
	cfg, st, err := loadStore(o.Config, o.Secrets)
	if err != nil {
		return "", err
	}
	defer st.Close()
	eng := &engine.Engine{Store: st, Templates: tmpl.New(tmpl.Options{})}
	out, err := eng.Do(ctx, engine.Request{Op: engine.OpHistory, ID: o.ID, Namespace: o.Namespace, Config: cfg,
		HistoryPath: o.Path, HistoryLimit: o.Limit})
	if err != nil {
		return "", err
	}
	text, _ := out.Result(engine.ResultHistory)
	return text, nil
}

// cliWho is who the history of a context records for the CLI's writes: the
// OS user (as the operator's login says, not verified further).
func cliWho() history.Who {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	return history.Who{User: name, Via: "cli"}
}
