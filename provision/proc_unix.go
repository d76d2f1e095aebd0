//go:build unix

package provision

import (
	"os/exec"
	"syscall"
)

// killGroupOnCancel starts cmd in its own process group and makes
// cancellation kill the whole group, so a script's children die with it.
func killGroupOnCancel(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

// exitStatus is the exit code, or 128+signal for a killed process, as a
// shell reports it.
func exitStatus(ee *exec.ExitError) int {
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ee.ExitCode()
}
