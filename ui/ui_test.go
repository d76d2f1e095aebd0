package ui

import (
	"bytes"
	"strings"
	"sync"
	"testing"
)

func TestMaskingAcrossWrites(t *testing.T) {
	s := &Secrets{}
	s.Add("hunter2", "a") // "a" is too short to mask
	var buf bytes.Buffer
	w := NewMaskingWriter(&buf, s)
	w.Write([]byte("password is hun"))
	w.Write([]byte("ter2 and a\nnext"))
	w.Flush()
	got := buf.String()
	if strings.Contains(got, "hunter2") || !strings.Contains(got, "password is <sensitive> and a\nnext") {
		t.Fatalf("got %q", got)
	}
}

func TestMultilineSecretMaskedLineByLine(t *testing.T) {
	s := &Secrets{}
	key := "-----BEGIN KEY-----\nAAAABBBBCCCCDDDDEEEE\n-----END KEY-----"
	s.Add(key)
	if got := s.Mask("line: AAAABBBBCCCCDDDDEEEE"); strings.Contains(got, "AAAABBBB") {
		t.Fatalf("key line not masked: %q", got)
	}
}

func TestBuildLinesPrefixedAndNotInterleaved(t *testing.T) {
	var buf bytes.Buffer
	o := NewOutput(&buf, nil)
	o.Secrets.Add("s3cret")
	var wg sync.WaitGroup
	for _, name := range []string{"qemu.a", "qemu.b"} {
		b := o.Build(name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := b.Writer()
			for i := 0; i < 100; i++ {
				w.Write([]byte("out"))
				w.Write([]byte("put s3cret\n"))
			}
		}()
	}
	wg.Wait()
	for _, line := range strings.Split(strings.TrimRight(buf.String(), "\n"), "\n") {
		if line != "    qemu.a: output <sensitive>" && line != "    qemu.b: output <sensitive>" {
			t.Fatalf("bad line %q", line)
		}
	}
}

func TestProgressNonTTYPrintsDeciles(t *testing.T) {
	var buf bytes.Buffer
	b := NewOutput(&buf, nil).Build("x")
	p := b.Progress("download")
	for i := int64(0); i <= 1000; i++ {
		p(i, 1000)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 11 || !strings.Contains(lines[10], "100%") {
		t.Fatalf("want 11 lines ending at 100%%, got %d: %q", len(lines), lines)
	}
	if Bytes(1536) != "1.5 KiB" || Bytes(3<<30) != "3.0 GiB" {
		t.Fatalf("Bytes: %s %s", Bytes(1536), Bytes(3<<30))
	}
}
