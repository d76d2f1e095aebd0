package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kilnbuild/kiln/builder"
	"github.com/kilnbuild/kiln/ui"
)

// runStdout runs kiln to completion with stdout kept apart from stderr:
// the machine formats promise a clean stdout.
func (e *env) runStdout(t *testing.T, timeout time.Duration, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(kilnBin, args...)
	cmd.Dir, cmd.Env = e.Dir, e.Environ
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, stdout.String(), stderr.String()
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
		t.Fatalf("kiln did not exit within %s\nstdout:\n%s\nstderr:\n%s", timeout, stdout.String(), stderr.String())
	}
	return 0, "", ""
}

// One real build with --json: every builder step starts and finishes in
// order, artifacts carry the real sizes of their files, the build finishes
// successfully. Then the same build with -machine-readable: its artifact
// lines parse and name files that exist.
func TestMachineReadableAndJSONBuild(t *testing.T) {
	requireVM(t)
	e := newEnv(t)
	out := filepath.Join(e.Dir, "out")
	args := []string{"-only", "*raw", "-var", "guest_dir=" + guestDir, "-var", "out=" + out, "-var", "name=" + e.Marker, template("build.pkr.hcl")}

	code, stdout, stderr := e.runStdout(t, 5*time.Minute, append([]string{"build", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	var steps []string
	var finish map[string]any
	artifacts := 0
	imageSeen := false
	for _, line := range strings.Split(strings.TrimSuffix(stdout, "\n"), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("stdout line is not JSON: %q", line)
		}
		if _, err := time.Parse(time.RFC3339Nano, ev["time"].(string)); err != nil {
			t.Fatalf("bad time in %q", line)
		}
		if b := ev["build"]; b != "" && b != "e2e.qemu.raw" {
			t.Fatalf("unexpected build in %q", line)
		}
		switch ev["type"] {
		case "step.start":
			steps = append(steps, "+"+ev["step"].(string))
		case "step.finish":
			steps = append(steps, "-"+ev["step"].(string))
			if ev["success"] != true || ev["error"] != nil || ev["duration_ms"].(float64) < 0 {
				t.Errorf("step failed or bad duration: %s", line)
			}
		case "artifact":
			if finish != nil {
				t.Errorf("artifact after build.finish: %s", line)
			}
			artifacts++
			p := ev["path"].(string)
			fi, err := os.Stat(p)
			if err != nil {
				t.Errorf("artifact %s: %v", p, err)
				continue
			}
			if int64(ev["size"].(float64)) != fi.Size() {
				t.Errorf("artifact %s: size %v, file has %d", p, ev["size"], fi.Size())
			}
			if ev["builder_id"] == "transcend.qemu" && fi.Size() > 1<<20 {
				imageSeen = true
			}
		case "error":
			t.Errorf("error event: %s", line)
		case "build.finish":
			finish = ev
		}
		if strings.Contains(line, "kiln-root-pw-3f9a") {
			t.Errorf("password in the event stream: %s", line)
		}
	}
	var want []string
	for _, s := range builder.Steps() {
		want = append(want, "+"+s.Name, "-"+s.Name)
	}
	want = append(want, "+post-processors", "-post-processors")
	if strings.Join(steps, " ") != strings.Join(want, " ") {
		t.Errorf("steps:\n%s\nwant:\n%s", strings.Join(steps, " "), strings.Join(want, " "))
	}
	if artifacts == 0 || !imageSeen {
		t.Errorf("want artifact events including the disk image (%d events)", artifacts)
	}
	if finish == nil || finish["success"] != true || finish["duration_ms"].(float64) < 1000 {
		t.Errorf("build.finish: %v", finish)
	}
	e.assertClean(t)

	code, stdout, stderr = e.runStdout(t, 5*time.Minute, append([]string{"build", "-machine-readable", "-force"}, args...)...)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	count, ends, files := -1, 0, 0
	var builderIDs []string
	for _, line := range strings.Split(strings.TrimSuffix(stdout, "\n"), "\n") {
		ml, err := ui.ParseMachineLine(line)
		if err != nil {
			t.Fatal(err)
		}
		switch ml.Type {
		case "ui":
			if ml.Target != "" || len(ml.Data) != 2 {
				t.Errorf("ui line: %q", line)
			}
		case "artifact-count":
			count, _ = strconv.Atoi(ml.Data[0])
		case "artifact":
			if ml.Target != "e2e.qemu.raw" {
				t.Errorf("artifact target: %q", line)
			}
			switch ml.Data[1] {
			case "builder-id":
				builderIDs = append(builderIDs, ml.Data[2])
			case "file":
				files++
				f := ml.Data[3]
				if !filepath.IsAbs(f) {
					f = filepath.Join(e.Dir, f)
				}
				if _, err := os.Stat(f); err != nil {
					t.Errorf("artifact file: %v", err)
				}
			case "end":
				ends++
			}
		}
	}
	if count < 1 || ends != count || len(builderIDs) != count || builderIDs[0] != "transcend.qemu" || files < 1 {
		t.Errorf("artifact-count %d, %d ends, builder ids %v, %d files:\n%s", count, ends, builderIDs, files, stdout)
	}
	e.assertClean(t)
}
