package qemu

import (
	"context"
	"encoding/json"
	"fmt"
	"image/color"
	"image/png"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kilnbuild/kiln/hypervisor/qmp"
)

// fakeQMP serves the QMP handshake and passes commands to handle, which
// returns the reply object ({"return": ...} or {"error": ...}).
func fakeQMP(t *testing.T, handle func(cmd string, args map[string]any) map[string]any) *qmp.Client {
	t.Helper()
	path := filepath.Join(shortTempDir(t), "qmp.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		enc := json.NewEncoder(conn)
		enc.Encode(map[string]any{"QMP": map[string]any{"version": map[string]any{"qemu": map[string]int{"major": 6}}}})
		dec := json.NewDecoder(conn)
		for {
			var req struct {
				Execute   string
				Arguments map[string]any
				ID        any
			}
			if dec.Decode(&req) != nil {
				return
			}
			r := map[string]any{"return": map[string]any{}}
			if req.Execute != "qmp_capabilities" {
				r = handle(req.Execute, req.Arguments)
			}
			r["id"] = req.ID
			enc.Encode(r)
		}
	}()
	c, err := qmp.Dial(ctxT(t, 5*time.Second), path, qmp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A QEMU without PNG screendumps (older, or built without libpng) gets a
// PPM request, converted to PNG in Go.
func TestScreendumpFallsBackToPPM(t *testing.T) {
	var mu sync.Mutex
	var calls []string
	c := fakeQMP(t, func(cmd string, args map[string]any) map[string]any {
		mu.Lock()
		calls = append(calls, fmt.Sprint(cmd, " ", args["format"]))
		mu.Unlock()
		if args["format"] != nil {
			return map[string]any{"error": map[string]string{"class": "GenericError", "desc": "Parameter 'format' is unexpected"}}
		}
		// 2x1: red, then blue; with a comment in the header.
		ppm := []byte("P6\n# QEMU\n2 1\n255\n\xff\x00\x00\x00\x00\xff")
		os.WriteFile(args["filename"].(string), ppm, 0o644)
		return map[string]any{"return": map[string]any{}}
	})
	dir := shortTempDir(t)
	out := filepath.Join(dir, "shot.png")
	if err := Screendump(context.Background(), c, out); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 2 || calls[0] != "screendump png" || calls[1] != "screendump <nil>" {
		t.Errorf("calls = %q", calls)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 2 || b.Dy() != 1 {
		t.Fatalf("size %v", b)
	}
	red := color.NRGBAModel.Convert(img.At(0, 0)).(color.NRGBA)
	blue := color.NRGBAModel.Convert(img.At(1, 0)).(color.NRGBA)
	if red != (color.NRGBA{255, 0, 0, 255}) || blue != (color.NRGBA{0, 0, 255, 255}) {
		t.Errorf("pixels %v %v", red, blue)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".screendump-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestScreendumpFailureKeepsOldFile(t *testing.T) {
	c := fakeQMP(t, func(cmd string, args map[string]any) map[string]any {
		return map[string]any{"error": map[string]string{"class": "GenericError", "desc": "no surface"}}
	})
	dir := shortTempDir(t)
	out := filepath.Join(dir, "shot.png")
	os.WriteFile(out, []byte("old"), 0o644)
	if err := Screendump(context.Background(), c, out); err == nil {
		t.Fatal("Screendump succeeded without a screen")
	}
	if b, _ := os.ReadFile(out); string(b) != "old" {
		t.Errorf("old screenshot replaced by %q", b)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".screendump-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
