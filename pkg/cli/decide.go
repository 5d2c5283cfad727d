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

	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/gate"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

// Reasons of `decide` failures (in its error line).
const (
	reasonNoWaitingGate  = "NoWaitingGate"
	reasonUnknownOption  = "UnknownOption"
	reasonAlreadyDecided = "AlreadyDecided"
	reasonNotAllowed     = "NotAllowed"
	reasonGateClosed     = "GateClosed"
)

// decideOptions are the flags of `cicdstatemgr decide`.
type decideOptions struct {
	Config, Secrets string
	ID, Key         string
	Namespace       string
	Option, By      string
	Timeout         time.Duration
}

// Decide runs `cicdstatemgr decide --config C --secrets S --id ID --option V [--by NAME]
// [--key KEY]`: it decides the latest waiting gate of the cicd context ID (or the one
// registered under KEY) and prints `choice=<v> chosen-by=<who>`.
//
// It is an operator's override, made with Redis credentials: it decides the gate at
// once, whatever the quorum of the gate's ApprovalGate, and the controller mirrors it
// into that object as a decision via cli (docs/gates.md). Approvers decide with their
// Kubernetes identity (kubectl, `tkn cicdstatemgr gates approve`) or Slack instead.
func Decide(args []string, stdout, stderr io.Writer) int {
	var o decideOptions
	fs := flag.NewFlagSet("cicdstatemgr decide", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Config, "config", "", "path to config.yaml (env "+EnvConfigPath+")")
	fs.StringVar(&o.Secrets, "secrets", "", "path to secrets.yaml (env "+EnvSecretsPath+")")
	fs.StringVar(&o.ID, "id", "", "cicd context data id whose latest waiting gate to answer (env "+EnvContextDataID+")")
	namespaceFlag(fs, &o.Namespace)
	fs.StringVar(&o.Key, "key", "", "answer the gate with this key instead")
	fs.StringVar(&o.Option, "option", "", "the value of the option to decide for")
	fs.StringVar(&o.By, "by", "", "who decides (default $USER)")
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
	if o.ID == "" && o.Key == "" {
		o.ID = os.Getenv(EnvContextDataID)
	}
	if o.By == "" {
		o.By = os.Getenv("USER")
	}
	o.Namespace = namespaceOrDefault(o.Namespace)
	redis.SetLogger(quietRedisLogger{})
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	d, err := decide(ctx, o)
	if err != nil {
		fmt.Fprintln(stderr, errorLine(err))
		return 1
	}
	fmt.Fprintf(stdout, "choice=%s chosen-by=%s\n", d.Choice, d.ChosenBy)
	return 0
}

func decide(ctx context.Context, o decideOptions) (gate.Decision, error) {
	switch {
	case o.Config == "":
		return gate.Decision{}, engine.Errorf(engine.ReasonInvalidParams, "--config <path> is required (or set %s)", EnvConfigPath)
	case strings.TrimSpace(o.ID) == "" && o.Key == "":
		return gate.Decision{}, engine.Errorf(engine.ReasonInvalidParams, "--id <id> or --key <key> is required (or set %s)", EnvContextDataID)
	case o.Option == "":
		return gate.Decision{}, engine.Errorf(engine.ReasonInvalidParams, "--option <value> is required")
	case strings.TrimSpace(o.By) == "":
		return gate.Decision{}, engine.Errorf(engine.ReasonInvalidParams, "--by <name> is required ($USER is not set)")
	}
	st, err := openStore(o.Config, o.Secrets)
	if err != nil {
		return gate.Decision{}, err
	}
	defer st.Close()
	ref := store.Ref(o.Namespace, o.ID)
	lookup := gate.Lookup{Key: o.Key}
	if o.Key == "" {
		if err := store.CheckNamespace(o.Namespace); err != nil {
			return gate.Decision{}, engine.Errorf(engine.ReasonInvalidParams, "--namespace: %v", err)
		}
		lookup.ContextID = ref
	}
	_, d, err := gate.New(st).Decide(ctx, lookup, gate.Decision{Choice: o.Option, ChosenBy: o.By, Via: gate.ViaCLI})
	switch {
	case err == nil:
		return d, nil
	case errors.Is(err, gate.ErrNotFound):
		if o.Key == "" {
			if ok, xerr := st.Exists(ctx, ref); xerr == nil && !ok {
				return d, engine.Errorf(engine.ReasonContextNotFound, "cicd context %q not found in namespace %q", o.ID, o.Namespace)
			}
			return d, engine.Errorf(reasonNoWaitingGate, "cicd context %q of namespace %q has no waiting gate", o.ID, o.Namespace)
		}
		return d, engine.Errorf(reasonNoWaitingGate, "no waiting gate with key %q", o.Key)
	case errors.Is(err, gate.ErrAlreadyDecided):
		return d, &engine.Error{Reason: reasonAlreadyDecided, Message: err.Error(), Err: err}
	case errors.Is(err, gate.ErrInvalidChoice):
		return d, &engine.Error{Reason: reasonUnknownOption, Message: err.Error(), Err: err}
	case errors.Is(err, gate.ErrNotAllowed):
		return d, &engine.Error{Reason: reasonNotAllowed, Message: err.Error(), Err: err}
	case errors.Is(err, gate.ErrCancelled):
		return d, &engine.Error{Reason: reasonGateClosed, Message: err.Error(), Err: err}
	case errors.Is(err, gate.ErrInvalid):
		return d, &engine.Error{Reason: engine.ReasonInvalidParams, Message: err.Error(), Err: err}
	}
	return d, err
}

// openStore opens the Redis store that config.yaml and secrets.yaml name.
func openStore(configPath, secretsPath string) (*store.Store, error) {
	_, st, err := loadStore(configPath, secretsPath)
	return st, err
}

// loadStore loads the configuration and opens the store it names.
func loadStore(configPath, secretsPath string) (*config.Config, *store.Store, error) {
	cfg, err := config.Load(configPath, secretsPath)
	if err != nil {
		return nil, nil, engine.Errorf(engine.ReasonInvalidConfig, "%v", err)
	}
	rc, err := cfg.Redis()
	if err != nil {
		return nil, nil, engine.Errorf(engine.ReasonInvalidConfig, "%v", err)
	}
	st, err := store.New(storeOptions(rc))
	if err != nil {
		return nil, nil, engine.Errorf(engine.ReasonInvalidConfig, "%v", err)
	}
	return cfg, st, nil
}
