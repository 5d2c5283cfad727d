package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
)

// Migrate runs `cicdstatemgr migrate --config C --secrets S --namespace NS [--id ID]...
// [--dry-run]`: it moves the contexts stored before contexts belonged to a namespace
// into NS (every one, or the --id ones), keeping their TTL, and prints one line per
// context: `moved <id>`, `conflict <id>` (NS already has that id: left as it was) or
// `invalid <id>` (the id cannot live in a namespace: left as it was) or `missing <id>`
// (an --id with no old context). It exits 1 when
// anything was left behind, so that an upgrade script notices. Safe to run again.
func Migrate(args []string, stdout, stderr io.Writer) int {
	var configPath, secretsPath, namespace string
	var ids []string
	var dryRun bool
	fs := flag.NewFlagSet("cicdstatemgr migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&configPath, "config", "", "path to config.yaml (env "+EnvConfigPath+")")
	fs.StringVar(&secretsPath, "secrets", "", "path to secrets.yaml (env "+EnvSecretsPath+")")
	fs.StringVar(&namespace, "namespace", "", "the namespace that receives the contexts (required)")
	fs.Var(listFlag{&ids}, "id", "migrate only this id (repeatable; default: every context)")
	fs.BoolVar(&dryRun, "dry-run", false, "report what would move, move nothing")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	if configPath == "" {
		configPath = os.Getenv(EnvConfigPath)
	}
	if secretsPath == "" {
		secretsPath = os.Getenv(EnvSecretsPath)
	}
	redis.SetLogger(quietRedisLogger{})
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	left, err := migrate(ctx, configPath, secretsPath, namespace, ids, dryRun, stdout)
	if err != nil {
		fmt.Fprintln(stderr, errorLine(err))
		return 1
	}
	if left > 0 {
		fmt.Fprintf(stderr, "cicdstatemgr: %d context(s) left where they were (see the conflict and invalid lines)\n", left)
		return 1
	}
	return 0
}

func migrate(ctx context.Context, configPath, secretsPath, namespace string, ids []string, dryRun bool, stdout io.Writer) (left int, err error) {
	switch {
	case configPath == "":
		return 0, engine.Errorf(engine.ReasonInvalidParams, "--config <path> is required (or set %s)", EnvConfigPath)
	case strings.TrimSpace(namespace) == "":
		return 0, engine.Errorf(engine.ReasonInvalidParams, "--namespace <namespace> is required: the namespace that will own the contexts")
	}
	st, err := openStore(configPath, secretsPath)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	res, err := st.Migrate(ctx, namespace, ids, dryRun)
	if res != nil {
		verb := "moved"
		if dryRun {
			verb = "would-move"
		}
		for _, id := range res.Moved {
			fmt.Fprintf(stdout, "%s %s\n", verb, id)
		}
		for _, id := range res.Conflicts {
			fmt.Fprintf(stdout, "conflict %s\n", id)
		}
		for _, id := range res.Invalid {
			fmt.Fprintf(stdout, "invalid %s\n", id)
		}
		for _, id := range res.Missing {
			fmt.Fprintf(stdout, "missing %s\n", id)
		}
		left = len(res.Conflicts) + len(res.Invalid) + len(res.Missing)
	}
	if err != nil {
		return left, engine.AsError(err, engine.ReasonInvalidParams)
	}
	return left, nil
}
