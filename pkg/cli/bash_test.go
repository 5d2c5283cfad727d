package cli_test

import "os/exec"

func runBash(dir, script string, args ...string) (string, error) {
	cmd := exec.Command("bash", append([]string{"-c", script, "_"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.Output()
	return string(out), err
}
