package main

import (
	versioned "github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// clients talk to the cluster of the user's kubeconfig, as the user.
type clients struct {
	dyn       dynamic.Interface
	kube      kubernetes.Interface
	tekton    versioned.Interface
	namespace string
	all       bool
}

// withClients builds the clients from the kubeconfig (KUBECONFIG or
// ~/.kube/config, --kubeconfig, --context, --as, --as-group) and runs fn.
func withClients(a args, fn func(*clients) error) error {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = a.get("kubeconfig")
	over := &clientcmd.ConfigOverrides{CurrentContext: a.get("context")}
	over.AuthInfo.Impersonate = a.get("as")
	over.AuthInfo.ImpersonateGroups = a.flags["as-group"]
	over.Context.Namespace = a.get("namespace")
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, over)
	cfg, err := cc.ClientConfig()
	if err != nil {
		return err
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return err
	}
	c := &clients{namespace: ns, all: a.has("all-namespaces")}
	if c.dyn, err = dynamic.NewForConfig(cfg); err != nil {
		return err
	}
	if c.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	if c.tekton, err = versioned.NewForConfig(cfg); err != nil {
		return err
	}
	return fn(c)
}
