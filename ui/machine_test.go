package ui

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

var fixedNow = time.Date(2026, 12, 6, 1, 2, 3, 456000000, time.UTC)

func newTestOutput(f Format) (*Output, *bytes.Buffer) {
	var buf bytes.Buffer
	o := NewOutput(&buf, nil)
	o.Format = f
	o.now = func() time.Time { return fixedNow }
	return o, &buf
}

func TestMachineEscapeRoundTrip(t *testing.T) {
	in := "a,b\nc\r\nd, e"
	esc := MachineEscape(in)
	if want := `a%!(PACKER_COMMA)b\nc\r\nd%!(PACKER_COMMA) e`; esc != want {
		t.Fatalf("escape: got %q, want %q", esc, want)
	}
	if strings.ContainsAny(esc, ",\n\r") {
		t.Fatalf("escaped field still holds a separator: %q", esc)
	}
	if got := MachineUnescape(esc); got != in {
		t.Fatalf("unescape: got %q, want %q", got, in)
	}
}

func TestMachineLinesMatchPacker(t *testing.T) {
	o, buf := newTestOutput(MachineReadable)
	o.Secrets.Add("pa,ss\"word")
	b := o.Build("qemu.debian")
	b.Say("Starting QEMU, pid %d", 42)
	b.Message("password is pa,ss\"word")
	b.Error("boom\nsecond line")
	o.Say("")
	o.Machine("qemu.debian", "artifact", "0", "file", "0", "out/a,b.qcow2")
	want := []string{
		`1796518923,,ui,say,==> qemu.debian: Starting QEMU%!(PACKER_COMMA) pid 42`,
		`1796518923,,ui,message,    qemu.debian: password is <sensitive>`,
		`1796518923,,ui,error,==> qemu.debian: error: boom\nsecond line`,
		`1796518923,,ui,say,`,
		`1796518923,qemu.debian,artifact,0,file,0,out/a%!(PACKER_COMMA)b.qcow2`,
	}
	got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	ml, err := ParseMachineLine(got[4])
	if err != nil {
		t.Fatal(err)
	}
	if ml.Time != fixedNow.Unix() || ml.Target != "qemu.debian" || ml.Type != "artifact" ||
		strings.Join(ml.Data, "|") != "0|file|0|out/a,b.qcow2" {
		t.Fatalf("parsed %+v", ml)
	}
	if _, err := ParseMachineLine("nonsense"); err == nil {
		t.Fatal("ParseMachineLine accepted a line without fields")
	}
}

func TestMachineAndEventAreSilentInOtherFormats(t *testing.T) {
	o, buf := newTestOutput(Human)
	o.Machine("", "version", "1")
	o.Event(Event{Type: EventStepStart, Step: "x"})
	o.Build("b").Say("hello")
	if got := buf.String(); got != "==> b: hello\n" {
		t.Fatalf("human output: %q", got)
	}
	j, jbuf := newTestOutput(JSON)
	j.Machine("", "version", "1")
	if jbuf.Len() != 0 {
		t.Fatalf("Machine wrote in JSON format: %q", jbuf.String())
	}
}

// decode parses every line of buf as one JSON object.
func decode(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestJSONEveryEventType(t *testing.T) {
	o, buf := newTestOutput(JSON)
	o.Secrets.Add("s3cr<et>")
	b := o.Build("e2e.qemu.raw")
	b.Say("typing s3cr<et>")
	b.Message("detail")
	b.Error("failed")
	o.Say("==> Wait completed")
	o.Event(Event{Build: "e2e.qemu.raw", Type: EventStepStart, Step: "qemu.start"})
	o.Event(Event{Build: "e2e.qemu.raw", Type: EventStepFinish, Step: "qemu.start", Success: true, Duration: 1500 * time.Millisecond})
	o.Event(Event{Build: "e2e.qemu.raw", Type: EventStepFinish, Step: "ssh.connect", Duration: time.Second, Err: errors.New("timeout").Error()})
	o.Event(Event{Build: "e2e.qemu.raw", Type: EventArtifact, BuilderID: "transcend.qemu", ArtifactID: "VM", Path: "/o/disk.raw", Size: 100663296})
	o.Event(Event{Build: "e2e.qemu.raw", Type: EventArtifact, BuilderID: "mitchellh.amazon", ArtifactID: "ami-1"})
	o.Event(Event{Type: EventError, Err: "Unsupported argument", File: "t.pkr.hcl", Line: 5, Column: 3})
	o.Event(Event{Build: "e2e.qemu.raw", Type: EventError, Err: "ssh.connect: timeout"})
	o.Event(Event{Build: "e2e.qemu.raw", Type: EventBuildFinish, Success: true, Duration: 12345 * time.Millisecond})

	want := []string{
		`{"time":"2026-12-06T01:02:03.456Z","build":"e2e.qemu.raw","type":"ui","level":"say","message":"typing <sensitive>"}`,
		`{"time":"2026-12-06T01:02:03.456Z","build":"e2e.qemu.raw","type":"ui","level":"message","message":"detail"}`,
		`{"time":"2026-12-06T01:02:03.456Z","build":"e2e.qemu.raw","type":"ui","level":"error","message":"failed"}`,
		`{"time":"2026-12-06T01:02:03.456Z","build":"","type":"ui","level":"say","message":"==> Wait completed"}`,
		`{"time":"2026-12-06T01:02:03.456Z","build":"e2e.qemu.raw","type":"step.start","step":"qemu.start"}`,
		`{"time":"2026-12-06T01:02:03.456Z","build":"e2e.qemu.raw","type":"step.finish","step":"qemu.start","success":true,"duration_ms":1500,"error":null}`,
		`{"time":"2026-12-06T01:02:03.456Z","build":"e2e.qemu.raw","type":"step.finish","step":"ssh.connect","success":false,"duration_ms":1000,"error":"timeout"}`,
		`{"time":"2026-12-06T01:02:03.456Z","build":"e2e.qemu.raw","type":"artifact","builder_id":"transcend.qemu","id":"VM","path":"/o/disk.raw","size":100663296}`,
		`{"time":"2026-12-06T01:02:03.456Z","build":"e2e.qemu.raw","type":"artifact","builder_id":"mitchellh.amazon","id":"ami-1","path":null,"size":null}`,
		`{"time":"2026-12-06T01:02:03.456Z","build":"","type":"error","error":"Unsupported argument","file":"t.pkr.hcl","line":5,"column":3}`,
		`{"time":"2026-12-06T01:02:03.456Z","build":"e2e.qemu.raw","type":"error","error":"ssh.connect: timeout"}`,
		`{"time":"2026-12-06T01:02:03.456Z","build":"e2e.qemu.raw","type":"build.finish","success":true,"duration_ms":12345,"error":null}`,
	}
	got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	decode(t, buf) // every line is valid JSON
}

func TestJSONProgressEvents(t *testing.T) {
	o, buf := newTestOutput(JSON)
	b := o.Build("x")
	p := b.Progress("download")
	for i := int64(0); i <= 1000; i++ {
		p(i, 1000)
	}
	b.Percent("convert")(100)
	evs := decode(t, buf)
	if len(evs) != 12 {
		t.Fatalf("want 11 decile events and one percent event, got %d: %s", len(evs), buf)
	}
	last := evs[10]
	if last["type"] != "progress" || last["label"] != "download" || last["done"] != 1000.0 || last["total"] != 1000.0 || last["pct"] != 100.0 {
		t.Fatalf("last download event: %v", last)
	}
	if evs[3]["pct"] != 30.0 || evs[3]["done"] != 300.0 {
		t.Fatalf("30%% event: %v", evs[3])
	}
	conv := evs[11]
	if conv["label"] != "convert" || conv["pct"] != 100.0 || conv["done"] != nil || conv["total"] != nil {
		t.Fatalf("percent-only event: %v", conv)
	}
	if _, ok := conv["done"]; !ok {
		t.Fatalf("progress events always carry done (null here): %v", conv)
	}
}
