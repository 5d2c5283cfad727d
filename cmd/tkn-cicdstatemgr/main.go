// Command tkn-cicdstatemgr is the tkn plugin of cicdstatemgr: `tkn
// cicdstatemgr ...` runs it (tkn runs tkn-<name> from the PATH), and it works
// alone too. It acts with the user's kubeconfig and identity only (RBAC and the
// API server's admission policy decide what it may do), never with Redis
// credentials:
//
//	tkn-cicdstatemgr gates list [-n NS | -A]
//	tkn-cicdstatemgr gates describe NAME [-n NS]
//	tkn-cicdstatemgr gates approve NAME [--option V] [-m MESSAGE] [-n NS]
//	tkn-cicdstatemgr gates reject NAME [-m MESSAGE] [-n NS]
//	tkn-cicdstatemgr context get ID [PATH] [-n NS]
//	tkn-cicdstatemgr context history ID [--path P] [--limit N] [-n NS]
//
// Global flags: --kubeconfig, --context, --as, --as-group (impersonation, as
// kubectl).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

const usage = `tkn-cicdstatemgr: approval gates and contexts of cicdstatemgr, with your kubeconfig

  gates list [-n NS | -A]                          pending gates first: run, task, title, options, approvals, waiting since
  gates describe NAME [-n NS]                      a gate: options, approvers, decisions, outcome
  gates approve NAME [--option V] [-m MESSAGE]     record your approval (of option V; default the first option)
  gates reject NAME [-m MESSAGE]                   record your rejection, with a reason
  context get ID [PATH] [-n NS]                    read a cicd context (PATH default $, the whole document)
                                                   through a get CustomRun in the namespace
  context history ID [--path P] [--limit N]        the history of a cicd context as JSON, newest first: who
                                                   changed what, when (entries that changed P, at most N)
                                                   through a history CustomRun in the namespace

flags: -n/--namespace, -A/--all-namespaces, --kubeconfig, --context, --as USER, --as-group GROUP (repeatable)
`

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "tkn-cicdstatemgr:", err)
		var u usageError
		if errors.As(err, &u) {
			fmt.Fprint(os.Stderr, usage)
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError string

func (u usageError) Error() string { return string(u) }

// run dispatches a command line.
func run(ctx context.Context, args []string, out io.Writer) error {
	a, err := parseArgs(args)
	if err != nil {
		return err
	}
	if a.has("help") || len(a.pos) == 0 {
		fmt.Fprint(out, usage)
		return nil
	}
	cmd := strings.Join(a.pos[:min(2, len(a.pos))], " ")
	rest := a.pos[min(2, len(a.pos)):]
	switch cmd {
	case "gates list", "gates ls":
		return withClients(a, func(c *clients) error { return listGates(ctx, c, a, out) })
	case "gates describe":
		return one(rest, "gates describe NAME", func(name string) error {
			return withClients(a, func(c *clients) error { return describeGate(ctx, c, name, out) })
		})
	case "gates approve", "gates reject":
		action := strings.TrimPrefix(cmd, "gates ")
		return one(rest, cmd+" NAME", func(name string) error {
			return withClients(a, func(c *clients) error { return decide(ctx, c, name, action, a.get("option"), a.get("message"), out) })
		})
	case "context get":
		if len(rest) < 1 || len(rest) > 2 {
			return usageError("context get ID [PATH]")
		}
		path := "$"
		if len(rest) == 2 {
			path = rest[1]
		}
		return withClients(a, func(c *clients) error { return getContext(ctx, c, rest[0], path, out) })
	case "context history":
		return one(rest, "context history ID [--path P] [--limit N]", func(id string) error {
			return withClients(a, func(c *clients) error { return contextHistory(ctx, c, id, a.get("path"), a.get("limit"), out) })
		})
	}
	return usageError(fmt.Sprintf("unknown command %q", strings.Join(a.pos, " ")))
}

func one(rest []string, what string, fn func(string) error) error {
	if len(rest) != 1 {
		return usageError("usage: " + what)
	}
	return fn(rest[0])
}

// args are the parsed command line: flags may come anywhere, as with kubectl.
type args struct {
	flags map[string][]string
	pos   []string
}

var (
	valueFlags = map[string]string{"n": "namespace", "namespace": "namespace", "kubeconfig": "kubeconfig", "context": "context",
		"as": "as", "as-group": "as-group", "option": "option", "m": "message", "message": "message",
		"path": "path", "limit": "limit"}
	boolFlags = map[string]string{"A": "all-namespaces", "all-namespaces": "all-namespaces", "h": "help", "help": "help"}
)

func parseArgs(in []string) (args, error) {
	a := args{flags: map[string][]string{}}
	for i := 0; i < len(in); i++ {
		s := in[i]
		if s == "--" {
			a.pos = append(a.pos, in[i+1:]...)
			break
		}
		if !strings.HasPrefix(s, "-") || s == "-" {
			a.pos = append(a.pos, s)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(s, "-"), "=")
		if b, ok := boolFlags[name]; ok && !hasVal {
			a.flags[b] = append(a.flags[b], "true")
			continue
		}
		key, ok := valueFlags[name]
		if !ok {
			return a, usageError(fmt.Sprintf("unknown flag %s", s))
		}
		if !hasVal {
			if i+1 >= len(in) {
				return a, usageError(fmt.Sprintf("flag %s needs a value", s))
			}
			i++
			val = in[i]
		}
		a.flags[key] = append(a.flags[key], val)
	}
	return a, nil
}

func (a args) has(k string) bool { return len(a.flags[k]) > 0 }

func (a args) get(k string) string {
	if v := a.flags[k]; len(v) > 0 {
		return v[len(v)-1]
	}
	return ""
}
