package postprocess

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestChecksum(t *testing.T) {
	dir := t.TempDir()
	files := map[string][]byte{"disk.qcow2": []byte("disk data"), "efivars.fd": []byte("vars")}
	in := buildArtifact(t, dir, files)
	env, _ := testEnv(dir)
	chains := parseChains(t, dir, `
post-processor "checksum" {
  checksum_types = ["md5", "sha256"]
  output = "${var.out}/sums/{{.BuildName}}_{{.BuilderType}}.{{.ChecksumType}}"
}`)
	arts, err := Run(context.Background(), chains, in, env)
	if err != nil {
		t.Fatal(err)
	}
	md5hex := func(b []byte) string { s := md5.Sum(b); return hex.EncodeToString(s[:]) }
	shahex := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	md5File := filepath.Join(dir, "sums", "debian_qemu.md5")
	shaFile := filepath.Join(dir, "sums", "debian_qemu.sha256")
	wantMD5 := md5hex(files["disk.qcow2"]) + "\tdisk.qcow2\n" + md5hex(files["efivars.fd"]) + "\tefivars.fd\n"
	wantSHA := shahex(files["disk.qcow2"]) + "\tdisk.qcow2\n" + shahex(files["efivars.fd"]) + "\tefivars.fd\n"
	if got := string(readFile(t, md5File)); got != wantMD5 {
		t.Errorf("md5 file =\n%s\nwant\n%s", got, wantMD5)
	}
	if got := string(readFile(t, shaFile)); got != wantSHA {
		t.Errorf("sha256 file =\n%s\nwant\n%s", got, wantSHA)
	}
	// checksum always keeps its input; its artifact adds the sum files.
	if len(arts) != 2 || !slices.Equal(arts[0].Files, in.Files) {
		t.Fatalf("artifacts = %+v, want the build's and the checksum's", arts)
	}
	if want := append(slices.Clone(in.Files), md5File, shaFile); !slices.Equal(arts[1].Files, want) {
		t.Errorf("checksum artifact files = %v, want %v", arts[1].Files, want)
	}
	if arts[1].BuilderID != "packer.post-processor.checksum" {
		t.Errorf("BuilderID = %q", arts[1].BuilderID)
	}
	// Packer appends to an existing checksum file.
	if _, err := Run(context.Background(), chains, in, env); err != nil {
		t.Fatal(err)
	}
	if got := string(readFile(t, md5File)); got != wantMD5+wantMD5 {
		t.Errorf("second run: md5 file =\n%s\nwant the lines twice", got)
	}
	if names := dirNames(t, filepath.Join(dir, "sums")); len(names) != 2 {
		t.Errorf("sums dir = %v, want no temporary files", names)
	}
}

func TestChecksumDefaults(t *testing.T) {
	dir := t.TempDir()
	in := buildArtifact(t, dir, map[string][]byte{"disk.raw": []byte("abc")})
	env, _ := testEnv(dir)
	if _, err := Run(context.Background(), parseChains(t, dir, `post-processor "checksum" {}`), in, env); err != nil {
		t.Fatal(err)
	}
	got := string(readFile(t, filepath.Join(dir, "packer_debian_qemu_md5.checksum")))
	if want := "900150983cd24fb0d6963f7d28e17f72\tdisk.raw\n"; got != want {
		t.Errorf("default checksum file = %q, want %q", got, want)
	}
}

func TestManifest(t *testing.T) {
	dir := t.TempDir()
	in := buildArtifact(t, dir, map[string][]byte{"disk.qcow2": []byte("12345")})
	env, _ := testEnv(dir)
	chains := parseChains(t, dir, `
post-processor "manifest" {
  custom_data = { owner = "ops", dir = var.out }
}`)
	for range 2 {
		if _, err := Run(context.Background(), chains, in, env); err != nil {
			t.Fatal(err)
		}
	}
	var m map[string]any
	if err := json.Unmarshal(readFile(t, filepath.Join(dir, "packer-manifest.json")), &m); err != nil {
		t.Fatal(err)
	}
	if m["last_run_uuid"] != "run-1" {
		t.Errorf("last_run_uuid = %v", m["last_run_uuid"])
	}
	builds := m["builds"].([]any)
	if len(builds) != 2 {
		t.Fatalf("builds = %d, want 2 (appended)", len(builds))
	}
	b := builds[0].(map[string]any)
	var keys []string
	for k := range b {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if got := strings.Join(keys, " "); got != "artifact_id build_time builder_type custom_data files name packer_run_uuid" {
		t.Errorf("entry keys = %s", got)
	}
	files := b["files"].([]any)
	f0 := files[0].(map[string]any)
	if b["name"] != "debian" || b["builder_type"] != "qemu" || b["artifact_id"] != "VM" || b["packer_run_uuid"] != "run-1" ||
		b["build_time"] != float64(1700000000) || f0["name"] != filepath.Join("output-debian", "disk.qcow2") || f0["size"] != float64(5) {
		t.Errorf("entry = %v", b)
	}
	if cd := b["custom_data"].(map[string]any); cd["owner"] != "ops" || cd["dir"] != dir {
		t.Errorf("custom_data = %v", cd)
	}
}

func TestManifestStripAndForce(t *testing.T) {
	dir := t.TempDir()
	in := buildArtifact(t, dir, map[string][]byte{"disk.qcow2": []byte("x")})
	out := filepath.Join(dir, "m.json")
	// An entry from another tool, with a field kiln does not know, must
	// survive an append.
	old := `{"builds":[{"name":"old","extra":{"kept":true}}],"last_run_uuid":"run-0"}`
	if err := os.WriteFile(out, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	env, _ := testEnv(dir)
	chains := parseChains(t, dir, `
post-processor "manifest" {
  output     = "m.json"
  strip_path = true
  strip_time = true
}`)
	if _, err := Run(context.Background(), chains, in, env); err != nil {
		t.Fatal(err)
	}
	var m struct {
		Builds []map[string]any `json:"builds"`
	}
	if err := json.Unmarshal(readFile(t, out), &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Builds) != 2 || m.Builds[0]["extra"] == nil {
		t.Fatalf("builds = %v, want the old entry (with its extra field) and the new one", m.Builds)
	}
	nb := m.Builds[1]
	if _, ok := nb["build_time"]; ok {
		t.Error("strip_time: build_time present")
	}
	if name := nb["files"].([]any)[0].(map[string]any)["name"]; name != "disk.qcow2" {
		t.Errorf("strip_path: file name = %v", name)
	}
	if nb["custom_data"] != nil {
		t.Errorf("custom_data = %v, want null as in Packer", nb["custom_data"])
	}

	// -force with another run's manifest starts afresh.
	env.Force, env.RunUUID = true, "run-2"
	if _, err := Run(context.Background(), chains, in, env); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(readFile(t, out), &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Builds) != 1 {
		t.Errorf("after -force from another run: %d builds, want 1", len(m.Builds))
	}
}

func TestShellLocal(t *testing.T) {
	dir := t.TempDir()
	in := buildArtifact(t, dir, map[string][]byte{"disk.qcow2": []byte("x")})
	env, out := testEnv(dir)
	chains := parseChains(t, dir, `
post-processor "shell-local" {
  environment_vars = ["GREETING=hello"]
  inline = ["echo \"$PACKER_BUILD_NAME $PACKER_BUILDER_TYPE $GREETING $KILN_ARTIFACT_FILES $KILN_ARTIFACT_ID\" > seen.txt", "test -f \"$KILN_ARTIFACT_FILES\""]
}`)
	arts, err := Run(context.Background(), chains, in, env)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := "debian qemu hello " + filepath.Join("output-debian", "disk.qcow2") + " VM\n"
	if got := string(readFile(t, filepath.Join(dir, "seen.txt"))); got != want {
		t.Errorf("script saw %q, want %q (it runs in Env.Dir)", got, want)
	}
	// shell-local passes its input through and keeps it.
	if len(arts) != 2 || !slices.Equal(arts[1].Files, in.Files) || !exists(filepath.Join(dir, in.Files[0])) {
		t.Errorf("artifacts = %+v", arts)
	}

	fail := parseChains(t, dir, `
post-processor "shell-local" {
  inline = ["exit 3"]
}`)
	if _, err := Run(context.Background(), fail, in, env); err == nil || !strings.Contains(err.Error(), "exited with code 3") {
		t.Errorf("failing script: err = %v", err)
	}

	other := "windows"
	if runtime.GOOS == "windows" {
		other = "linux"
	}
	skip := parseChains(t, dir, `
post-processor "shell-local" {
  only_on = ["`+other+`"]
  inline  = ["touch ran.txt"]
}`)
	if _, err := Run(context.Background(), skip, in, env); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(dir, "ran.txt")) {
		t.Error("only_on for another OS: the script ran")
	}
}

func TestShellLocalExecuteCommandString(t *testing.T) {
	dir := t.TempDir()
	in := buildArtifact(t, dir, map[string][]byte{"disk.qcow2": []byte("x")})
	env, out := testEnv(dir)
	// A one-element execute_command is run with sh -c, as Packer's
	// post-processor did when it took a string.
	chains := parseChains(t, dir, `
post-processor "shell-local" {
  execute_command = ["{{.Vars}} sh {{.Script}} > via-sh.txt"]
  inline = ["echo $PACKER_BUILDER_TYPE"]
}`)
	if _, err := Run(context.Background(), chains, in, env); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := string(readFile(t, filepath.Join(dir, "via-sh.txt"))); got != "qemu\n" {
		t.Errorf("output = %q", got)
	}
}
