package e2e

import (
	"path/filepath"
	"testing"
	"time"
)

// TestTypingArrivesExactly types 300 characters, every shifted character of
// a US keyboard among them, into a guest that reports each typed line's
// length and sha256 on its serial console: every character must arrive, in
// order. QMP at 3 ms per key is the default path at the benchmark's speed
// (1.5 s for the line); VNC at 10 ms per key is the fastest VNC pacing the
// benchmark reports.
func TestTypingArrivesExactly(t *testing.T) {
	requireVM(t)
	dir := installerDir(t)
	for _, c := range []struct{ transport, interval string }{{"qmp", "3ms"}, {"vnc", "10ms"}} {
		t.Run(c.transport, func(t *testing.T) {
			e := newEnv(t)
			e.mustBuild(t, 5*time.Minute, "build", "-var", "installer_dir="+dir, "-var", "out="+filepath.Join(e.Dir, "out"),
				"-var", "transport="+c.transport, "-var", "interval="+c.interval, "-var", "text="+typingText, template("typing.pkr.hcl"))
			assertTyped(t, serialLog(t, e), typingText)
		})
	}
}
