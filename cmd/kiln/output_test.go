package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kilnbuild/kiln/ui"
)

func machineLines(t *testing.T, out string) []ui.MachineLine {
	t.Helper()
	var mls []ui.MachineLine
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		ml, err := ui.ParseMachineLine(l)
		if err != nil {
			t.Fatal(err)
		}
		mls = append(mls, ml)
	}
	return mls
}

func jsonEvents(t *testing.T, out string) []map[string]any {
	t.Helper()
	var evs []map[string]any
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not a JSON line: %q: %v", l, err)
		}
		evs = append(evs, m)
	}
	return evs
}

func TestVersionMachineReadableAnywhere(t *testing.T) {
	for _, args := range [][]string{{"-machine-readable", "version"}, {"version", "-machine-readable"}} {
		code, out, errs := kiln(t, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errs)
		}
		mls := machineLines(t, out)
		if len(mls) != 4 || mls[0].Type != "version" || mls[0].Data[0] != "0.1.0" ||
			mls[1].Type != "version-prerelease" || mls[1].Data[0] != "dev" ||
			mls[3].Type != "ui" || mls[3].Data[0] != "say" || mls[3].Data[1] != "kiln v"+version {
			t.Fatalf("%v:\n%s", args, out)
		}
	}
}

func TestValidateMachineFormats(t *testing.T) {
	code, out, errs := kiln(t, "validate", "-machine-readable", "-var", "guest_dir=/g", "-var", "out=/o", e2eTemplate)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if mls := machineLines(t, out); len(mls) != 1 || mls[0].Type != "ui" || mls[0].Data[1] != "The configuration is valid." {
		t.Fatalf("machine-readable validate:\n%s", out)
	}
	code, out, _ = kiln(t, "validate", "--json", "-var", "guest_dir=/g", "-var", "out=/o", e2eTemplate)
	if evs := jsonEvents(t, out); code != 0 || len(evs) != 1 || evs[0]["type"] != "ui" || evs[0]["message"] != "The configuration is valid." {
		t.Fatalf("json validate: exit %d\n%s", code, out)
	}
}

func TestValidateErrorsInMachineFormats(t *testing.T) {
	dir := t.TempDir()
	tpl := filepath.Join(dir, "t.pkr.hcl")
	writeFile(t, tpl, "source \"qemu\" \"x\" {\n  iso_url      = \"a.iso\"\n  iso_checksum = \"none\"\n  ssh_username = \"root\"\n  disk_sise    = \"10G\"\n}\nbuild { sources = [\"source.qemu.x\"] }\n")
	code, out, errs := kiln(t, "validate", "-json", tpl)
	if code != 1 || !strings.Contains(errs, "t.pkr.hcl:5:3") {
		t.Fatalf("exit %d, stderr %s", code, errs)
	}
	evs := jsonEvents(t, out)
	if len(evs) != 1 || evs[0]["type"] != "error" || evs[0]["file"] != tpl || evs[0]["line"] != 5.0 || evs[0]["column"] != 3.0 ||
		!strings.Contains(evs[0]["error"].(string), "disk_size") {
		t.Fatalf("want one error event at 5:3, got:\n%s", out)
	}
	code, out, _ = kiln(t, "validate", tpl, "-machine-readable")
	mls := machineLines(t, out)
	if code != 1 || len(mls) != 1 || mls[0].Type != "ui" || mls[0].Data[0] != "error" || !strings.Contains(mls[0].Data[1], "t.pkr.hcl:5:3") {
		t.Fatalf("machine-readable error: exit %d\n%s", code, out)
	}
	if strings.Count(out, "\n") != 1 {
		t.Fatalf("a multi-line diagnostic must stay one line:\n%s", out)
	}
}

func TestInspectMachineReadableIsOneSay(t *testing.T) {
	code, out, errs := kiln(t, "inspect", "-machine-readable", "-var", "guest_dir=/g", "-var", "out=/o", e2eTemplate)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	mls := machineLines(t, out)
	if len(mls) != 1 || mls[0].Data[0] != "say" || !strings.Contains(mls[0].Data[1], "var.root_password: <sensitive>\n") ||
		strings.Contains(out, "kiln-root-pw-3f9a") {
		t.Fatalf("inspect:\n%s", out)
	}
}

func TestOutputFlagsExclusiveAndRunErrorsReported(t *testing.T) {
	if code, _, errs := kiln(t, "build", "--json", "-machine-readable", e2eTemplate); code != 1 || !strings.Contains(errs, "cannot be used together") {
		t.Fatalf("exit %d: %s", code, errs)
	}
	code, out, _ := kiln(t, "build", "--json", "-only", "nothing.*", "-var", "guest_dir=/g", "-var", "out=/o", e2eTemplate)
	evs := jsonEvents(t, out)
	if code != 1 || len(evs) != 1 || evs[0]["type"] != "error" || !strings.Contains(evs[0]["error"].(string), "no qemu builds") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

// A build that fails in its fetch step (no QEMU needed) streams the steps
// up to the failure, an error and a failed build.finish.
func TestBuildJSONStreamsFailedStep(t *testing.T) {
	t.Setenv("KILN_LOG_DIR", t.TempDir())
	t.Setenv("KILN_CACHE_DIR", t.TempDir())
	dir := t.TempDir()
	code, out, errs := kiln(t, "build", "--json", "-only", "e2e.qemu.raw", "-var", "guest_dir="+filepath.Join(dir, "missing"), "-var", "checksum=none", "-var", "out="+dir, e2eTemplate)
	if code != 1 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	evs := jsonEvents(t, out)
	var steps []string
	var finish map[string]any
	sawError := false
	for _, e := range evs {
		if e["build"] != "" && e["build"] != "e2e.qemu.raw" {
			t.Fatalf("event of another build: %v", e)
		}
		switch e["type"] {
		case "step.start":
			steps = append(steps, "start:"+e["step"].(string))
		case "step.finish":
			steps = append(steps, "finish:"+e["step"].(string))
			if e["step"] == "source.fetch" && (e["success"] != false || e["error"] == nil) {
				t.Fatalf("fetch should fail: %v", e)
			}
		case "error":
			sawError = sawError || e["build"] == "e2e.qemu.raw"
		case "build.finish":
			finish = e
		}
	}
	want := "start:output.check finish:output.check start:workdir.create finish:workdir.create start:source.fetch finish:source.fetch"
	if strings.Join(steps, " ") != want {
		t.Fatalf("steps:\n%s\nwant:\n%s", strings.Join(steps, " "), want)
	}
	if !sawError || finish == nil || finish["success"] != false || finish["error"] == nil {
		t.Fatalf("want an error event and a failed build.finish:\n%s", out)
	}
	if strings.Contains(out, "kiln-root-pw-3f9a") {
		t.Fatal("password in the event stream")
	}
}
