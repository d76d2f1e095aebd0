package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBuildLegacyJSON builds testdata/e2e/build.json, the legacy JSON twin
// of build.pkr.hcl, and checks the same results TestBuildQcow2AndRaw
// checks: the JSON loader must give the pipeline the same configuration.
func TestBuildLegacyJSON(t *testing.T) {
	requireVM(t)
	e := newEnv(t)
	out := filepath.Join(e.Dir, "out")
	log := e.mustBuild(t, 15*time.Minute, "build", "-var", "guest_dir="+guestDir, "-var", "out="+out, "-var", "name="+e.Marker, template("build.json"))

	assertE2EBuilt(t, out, e.Marker)
	// Legacy builds are named after their builder, as in Packer.
	for _, want := range []string{"qcow2: ", "kiln-e2e: provisioning qcow2", "kiln-e2e: check.sh ran for raw", "Builds finished"} {
		if !strings.Contains(log, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(log, "kiln-root-pw-3f9a") {
		t.Error("output shows the sensitive ssh password")
	}
}
