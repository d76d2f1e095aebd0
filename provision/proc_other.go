//go:build !unix

package provision

import "os/exec"

// killGroupOnCancel: without process groups, cancellation kills only
// the process itself (exec's default).
func killGroupOnCancel(cmd *exec.Cmd) {}

func exitStatus(ee *exec.ExitError) int { return ee.ExitCode() }
