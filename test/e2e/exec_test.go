package e2e

import "os/exec"

// execKubectl runs kubectl and returns its stdout even when it exits non-zero
// (`kubectl auth can-i` answers "no" with exit 1).
func execKubectl(args ...string) (string, error) {
	out, err := exec.Command(kubectlPath, args...).Output()
	return string(out), err
}
