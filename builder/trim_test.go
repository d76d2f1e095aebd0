package builder

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestTrimCommandFallsBack runs trimCommand under a shell with an fstrim
// that, like busybox's, rejects -a: every mounted block-device filesystem
// must then be trimmed one by one, and the command must succeed.
func TestTrimCommandFallsBack(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	fake := "#!/bin/sh\necho \"$*\" >>" + log + "\ncase $1 in -a*) exit 1 ;; esac\nexit 0\n"
	if err := os.WriteFile(filepath.Join(dir, "fstrim"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	mounts, _ := os.ReadFile("/proc/mounts")
	want := 0
	for _, l := range strings.Split(string(mounts), "\n") {
		if strings.HasPrefix(l, "/dev/") {
			want++
		}
	}
	cmd := exec.Command("sh", "-c", trimCommand)
	cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if want == 0 {
		// Nothing to trim (a container without block devices): failure.
		if err == nil {
			t.Error("trim command succeeded with no filesystem trimmed")
		}
		return
	}
	if err != nil {
		t.Fatalf("trim command: %v\n%s", err, out)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	calls := strings.Split(strings.TrimSpace(string(b)), "\n")
	if calls[0] != "-av" || len(calls) != 1+want {
		t.Errorf("fstrim calls %q, want -av then one per /dev/ mount (%d)", calls, want)
	}
	for _, c := range calls[1:] {
		if !strings.HasPrefix(c, "-v /") {
			t.Errorf("fallback call %q is not -v MOUNTPOINT", c)
		}
	}
}

// TestTrimCommandFailsWhenNothingTrims: with an fstrim that always fails,
// the command reports failure (kiln then warns).
func TestTrimCommandFailsWhenNothingTrims(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "fstrim"), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", trimCommand)
	cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
	if err := cmd.Run(); err == nil {
		t.Error("trim command succeeded although every fstrim failed")
	}
}
