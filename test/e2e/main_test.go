// Package e2e runs the product end to end: a real kube-apiserver and etcd,
// the real Tekton Pipelines controller, a real Redis and our controller
// under its own ServiceAccount (hack/stack.sh). Pipelines made only of our
// custom task need no pods, so no kubelet is involved.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	versioned "github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// The e2e stack gets its own directory and ports, so that it never clashes
// with a `make demo` cluster left running.
var stackEnv = map[string]string{
	"CLUSTER_DIR":            "",
	"ETCD_CLIENT_PORT":       "33790",
	"ETCD_PEER_PORT":         "33800",
	"APISERVER_PORT":         "26443",
	"TEKTON_PORT_BASE":       "18200",
	"REDIS_PORT":             "16380",
	"CONTROLLER_HTTP_PORT":   "18092",
	"CONTROLLER_PROBES_PORT": "18093",
	"ECHO_PORT":              "18094",
}

var (
	// kubectlPath is the kubectl hack/ found or built (a fresh machine may
	// have none on PATH).
	kubectlPath = "kubectl"
	root        string
	tekton      versioned.Interface
	kube        kubernetes.Interface
	redisAdr    string
	// redisDatasource is config.yaml's datasources.redis of the stack's topology
	// (hack/stack.sh REDIS_TOPOLOGY), for the CLI.
	redisDatasource string
	// redisNodes are the addresses of every node of the stack's Redis (the one
	// Redis, or each primary of the Cluster).
	redisNodes []string
	// sentinels and sentinelMaster are the stack's sentinels and the name they
	// monitor the primary under (REDIS_TOPOLOGY=sentinel; none otherwise).
	sentinels      []string
	sentinelMaster string
	// ctrlURL is the controller's Slack listener; probeURL its listener of
	// /healthz, /readyz and /metrics.
	ctrlURL  string
	probeURL string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	wd, _ := os.Getwd()
	root = filepath.Clean(filepath.Join(wd, "..", ".."))
	stackEnv["CLUSTER_DIR"] = filepath.Join(root, ".cache", "e2e-cluster")
	if err := stack("up"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: bringing up the stack failed:", err)
		stack("down")
		return 1
	}
	defer func() {
		if os.Getenv("E2E_KEEP") == "" {
			stack("down")
		}
	}()
	env, err := readEnv(filepath.Join(stackEnv["CLUSTER_DIR"], "stack.env"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", env["KUBECONFIG"])
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	cfg.QPS, cfg.Burst = 50, 100
	tekton = versioned.NewForConfigOrDie(cfg)
	kube = kubernetes.NewForConfigOrDie(cfg)
	redisAdr, ctrlURL, probeURL = env["CICDSTATEMGR_REDIS_ADDR"], env["CICDSTATEMGR_CONTROLLER_URL"], env["CICDSTATEMGR_PROBES_URL"]
	redisDatasource = env["CICDSTATEMGR_REDIS_DATASOURCE"]
	redisNodes = strings.Split(env["CICDSTATEMGR_REDIS_NODES"], ",")
	if env["CICDSTATEMGR_REDIS_NODES"] == "" { // a stack.env written before the variable existed
		redisNodes = []string{redisAdr}
	}
	if env["CICDSTATEMGR_REDIS_SENTINELS"] != "" {
		sentinels, sentinelMaster = strings.Split(env["CICDSTATEMGR_REDIS_SENTINELS"], ","), env["CICDSTATEMGR_REDIS_MASTER_NAME"]
	}
	if env["KUBECTL"] != "" {
		kubectlPath = env["KUBECTL"]
	}
	os.Setenv("KUBECONFIG", env["KUBECONFIG"])
	return m.Run()
}

// stack runs hack/stack.sh with the e2e environment.
func stack(args ...string) error {
	cmd := exec.Command("bash", append([]string{filepath.Join(root, "hack", "stack.sh")}, args...)...)
	cmd.Env = os.Environ()
	for k, v := range stackEnv {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

func readEnv(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			out[k] = v
		}
	}
	return out, sc.Err()
}

// kubectl applies or runs kubectl with the admin kubeconfig.
func kubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(kubectlPath, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl %v: %v\n%s", args, err, errb.String())
	}
	return out.String()
}

// namespace creates a fresh namespace for one test.
func namespace(t *testing.T, name string) string {
	t.Helper()
	ns := fmt.Sprintf("%s-%d", name, time.Now().UnixNano()%1000000)
	_, err := kube.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ns
}
