package e2e

import (
	"os"
	"os/exec"
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
	k := e.start(t, "build", "-var", "guest_dir="+guestDir, "-var", "out="+out, "-var", "name="+e.Marker, template("build.json"))
	code, _ := k.wait(15 * time.Minute)
	log := k.output()
	if code != 0 {
		t.Fatalf("kiln build exited %d:\n%s", code, log)
	}
	e.assertClean(t)

	for _, tc := range []struct{ source, format string }{{"qcow2", "qcow2"}, {"raw", "raw"}} {
		image := filepath.Join(out, tc.source, e.Marker+"-"+tc.source)
		info, err := exec.Command("qemu-img", "info", image).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", image, err, info)
		}
		if !strings.Contains(string(info), "file format: "+tc.format) {
			t.Errorf("%s is not %s:\n%s", image, tc.format, info)
		}
		if got := readGuestFile(t, image, "provisioned.txt"); got != "provisioned by "+tc.source+"\n" {
			t.Errorf("%s: provisioned.txt = %q", tc.source, got)
		}
		if got := readGuestFile(t, image, "payload.txt"); got != "payload uploaded by the file provisioner\n" {
			t.Errorf("%s: payload.txt = %q", tc.source, got)
		}
		if got := readGuestFile(t, image, "env.txt"); got != "hello world, it's kiln|"+tc.source+"\n" {
			t.Errorf("%s: env.txt = %q (environment_vars not passed intact)", tc.source, got)
		}
		if b, err := os.ReadFile(filepath.Join(out, "downloaded-"+tc.source+".txt")); err != nil || string(b) != "provisioned by "+tc.source+"\n" {
			t.Errorf("%s: file download: %q %v", tc.source, b, err)
		}
		if b, err := os.ReadFile(filepath.Join(out, "local-"+tc.source+".txt")); err != nil || !strings.Contains(string(b), "local "+tc.source) {
			t.Errorf("%s: shell-local: %q %v", tc.source, b, err)
		}
		sum, err := os.ReadFile(filepath.Join(out, tc.source+".sha256"))
		want, _ := exec.Command("sha256sum", image).Output()
		if err != nil || len(want) < 64 || !strings.HasPrefix(string(sum), string(want[:64])) {
			t.Errorf("checksum post-processor for %s: %q (want %.64s) %v", tc.source, sum, want, err)
		}
	}
	m, err := os.ReadFile(filepath.Join(out, "manifest.json"))
	if err != nil || strings.Count(string(m), `"builder_type": "qemu"`) != 2 || !strings.Contains(string(m), `"name": "qcow2"`) {
		t.Errorf("manifest post-processor: %s %v", m, err)
	}
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
