package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/choice"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

// Reasons of `choose` failures (in its error line).
const (
	reasonNoPendingChoice = "NoPendingChoice"
	reasonInvalidChoice   = "InvalidChoice"
	reasonAlreadyDecided  = "AlreadyDecided"
	reasonNotAllowed      = "NotAllowed"
	reasonChoiceCancelled = "ChoiceCancelled"
)

// chooseOptions are the flags of `cicdstatemgr choose`.
type chooseOptions struct {
	Config, Secrets string
	ID, Key         string
	Choice, By      string
	Timeout         time.Duration
}

// Choose runs `cicdstatemgr choose --config C --secrets S --id ID --choice V [--by NAME]
// [--key KEY]`: it answers the latest pending choice of the cicd context ID (or the one
// registered under KEY) and prints `choice=<v> chosen-by=<who>`.
func Choose(args []string, stdout, stderr io.Writer) int {
	var o chooseOptions
	fs := flag.NewFlagSet("cicdstatemgr choose", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Config, "config", "", "path to config.yaml (env "+EnvConfigPath+")")
	fs.StringVar(&o.Secrets, "secrets", "", "path to secrets.yaml (env "+EnvSecretsPath+")")
	fs.StringVar(&o.ID, "id", "", "cicd context data id whose latest pending choice to answer (env "+EnvContextDataID+")")
	fs.StringVar(&o.Key, "key", "", "answer the pending choice with this key instead")
	fs.StringVar(&o.Choice, "choice", "", "the option value to choose")
	fs.StringVar(&o.By, "by", "", "who chooses (default $USER)")
	fs.DurationVar(&o.Timeout, "timeout", 30*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "cicdstatemgr: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if o.Config == "" {
		o.Config = os.Getenv(EnvConfigPath)
	}
	if o.Secrets == "" {
		o.Secrets = os.Getenv(EnvSecretsPath)
	}
	if o.ID == "" && o.Key == "" {
		o.ID = os.Getenv(EnvContextDataID)
	}
	if o.By == "" {
		o.By = os.Getenv("USER")
	}
	redis.SetLogger(quietRedisLogger{})
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	d, err := choose(ctx, o)
	if err != nil {
		fmt.Fprintln(stderr, errorLine(err))
		return 1
	}
	fmt.Fprintf(stdout, "choice=%s chosen-by=%s\n", d.Choice, d.ChosenBy)
	return 0
}

func choose(ctx context.Context, o chooseOptions) (choice.Decision, error) {
	switch {
	case o.Config == "":
		return choice.Decision{}, engine.Errorf(engine.ReasonInvalidParams, "--config <path> is required (or set %s)", EnvConfigPath)
	case strings.TrimSpace(o.ID) == "" && o.Key == "":
		return choice.Decision{}, engine.Errorf(engine.ReasonInvalidParams, "--id <id> or --key <key> is required (or set %s)", EnvContextDataID)
	case o.Choice == "":
		return choice.Decision{}, engine.Errorf(engine.ReasonInvalidParams, "--choice <value> is required")
	case strings.TrimSpace(o.By) == "":
		return choice.Decision{}, engine.Errorf(engine.ReasonInvalidParams, "--by <name> is required ($USER is not set)")
	}
	cfg, err := config.Load(o.Config, o.Secrets)
	if err != nil {
		return choice.Decision{}, engine.Errorf(engine.ReasonInvalidConfig, "%v", err)
	}
	rc, err := cfg.Redis()
	if err != nil {
		return choice.Decision{}, engine.Errorf(engine.ReasonInvalidConfig, "%v", err)
	}
	st, err := store.New(storeOptions(rc))
	if err != nil {
		return choice.Decision{}, engine.Errorf(engine.ReasonInvalidConfig, "%v", err)
	}
	defer st.Close()
	lookup := choice.Lookup{Key: o.Key}
	if o.Key == "" {
		lookup.ContextID = o.ID
	}
	_, d, err := choice.New(st).Decide(ctx, lookup, choice.Decision{Choice: o.Choice, ChosenBy: o.By, Via: choice.ViaCLI})
	switch {
	case err == nil:
		return d, nil
	case errors.Is(err, choice.ErrNotFound):
		if o.Key == "" {
			if ok, xerr := st.Exists(ctx, o.ID); xerr == nil && !ok {
				return d, engine.Errorf(engine.ReasonContextNotFound, "cicd context %q not found", o.ID)
			}
			return d, engine.Errorf(reasonNoPendingChoice, "cicd context %q has no pending choice", o.ID)
		}
		return d, engine.Errorf(reasonNoPendingChoice, "no pending choice with key %q", o.Key)
	case errors.Is(err, choice.ErrAlreadyDecided):
		return d, &engine.Error{Reason: reasonAlreadyDecided, Message: err.Error(), Err: err}
	case errors.Is(err, choice.ErrInvalidChoice):
		return d, &engine.Error{Reason: reasonInvalidChoice, Message: err.Error(), Err: err}
	case errors.Is(err, choice.ErrNotAllowed):
		return d, &engine.Error{Reason: reasonNotAllowed, Message: err.Error(), Err: err}
	case errors.Is(err, choice.ErrCancelled):
		return d, &engine.Error{Reason: reasonChoiceCancelled, Message: err.Error(), Err: err}
	case errors.Is(err, choice.ErrInvalid):
		return d, &engine.Error{Reason: engine.ReasonInvalidParams, Message: err.Error(), Err: err}
	}
	return d, err
}
