package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCLILinksNoTracingNorKubernetes keeps the CLI lean: every pipeline step
// starts it, and its start-up is measured against a Go hello world (README,
// Benchmarks). The controller installs its tracing (pkg/observability) into
// the packages both share; OpenTelemetry, k8s.io (klog's init) and the
// controller's own packages stay out of this binary. That it is static is a
// build flag (CGO_ENABLED=0 in `make build`), not a dependency.
func TestCLILinksNoTracingNorKubernetes(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	banned := []string{
		"go.opentelemetry.io/",
		"k8s.io/",
		"knative.dev/",
		"github.com/cicdstatemgr/cicdstatemgr/pkg/observability",
		"github.com/cicdstatemgr/cicdstatemgr/pkg/reconciler",
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, b := range banned {
			if strings.HasPrefix(pkg, b) {
				t.Errorf("the CLI links %s", pkg)
			}
		}
	}
}
