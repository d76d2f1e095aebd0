package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/kilnbuild/kiln/internal/textdist"
)

// The typing section measures boot-command typing: kiln builds
// testdata/e2e/typing.pkr.hcl, whose guest echoes every line typed on its
// keyboard to the serial console, with a 300-character line holding every
// shifted character of a US keyboard. Reported per path and key interval:
// the time kiln took to type it (its "boot command typed in" line, which
// covers the 300 characters plus "<enter>poweroff<enter>") and how many
// characters arrived wrong (see typingErrors).
var typingText = strings.Repeat(`Kiln_Types:Fast! "Shifted" ~Keys~ (a|b) <1> [x] {y} @home #2 $3 %4 ^5 &6 *7 +8 =9 -0 ;'/.,?\`+"` ", 10)[:300]

var typedIn = regexp.MustCompile(`boot command typed in ([0-9.]+m?s)`)

type typingCase struct{ transport, interval string }

func (b *bench) typingSection(ctx context.Context, stdout, stderr io.Writer) int {
	ensure := exec.CommandContext(ctx, filepath.Join(b.root, "testdata", "installer", "ensure.sh"))
	ensure.Stderr = stderr
	out, err := ensure.Output()
	if err != nil {
		fmt.Fprintf(stderr, "bench: installer fixture: %v\n", err)
		return 1
	}
	installer := strings.TrimSpace(string(out))
	fmt.Fprintf(stdout, "\nBoot command typing: %d characters (%d shifted) into a Linux console, 1 run each\n", len(typingText), shifted(typingText))
	fmt.Fprintf(stdout, "  %-5s %-9s %9s %8s %s\n", "path", "interval", "typed in", "errors", "target")
	for i, c := range []typingCase{{"qmp", "3ms"}, {"qmp", "10ms"}, {"vnc", "10ms"}, {"vnc", "20ms"}} {
		d, errs, err := b.typing(ctx, i, installer, c)
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "bench: interrupted")
			return 130
		}
		if err != nil {
			fmt.Fprintf(stderr, "bench: typing over %s at %s: %v\n", c.transport, c.interval, err)
			return 1
		}
		target := ""
		if c.transport == "qmp" && c.interval == "3ms" {
			target = verdict(d <= 2*time.Second && errs == 0) + " (<= 2 s, 0 errors)"
		}
		fmt.Fprintf(stdout, "  %-5s %-9s %9s %8d %s\n", c.transport, c.interval, secs(d), errs, target)
	}
	return 0
}

func shifted(s string) int {
	n := 0
	for _, r := range s {
		if strings.ContainsRune(`~!@#$%^&*()_+{}|:"<>?ABCDEFGHIJKLMNOPQRSTUVWXYZ`, r) {
			n++
		}
	}
	return n
}

// typing runs one typing build and returns the typing time and the number
// of characters that arrived wrong.
func (b *bench) typing(ctx context.Context, i int, installer string, c typingCase) (time.Duration, int, error) {
	dir := filepath.Join(b.tmp, fmt.Sprintf("typing-%d", i))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	logs := filepath.Join(dir, "logs")
	cmd := exec.CommandContext(ctx, b.kiln, "build", "-var", "installer_dir="+installer, "-var", "out="+filepath.Join(dir, "out"),
		"-var", "transport="+c.transport, "-var", "interval="+c.interval, "-var", "text="+typingText,
		filepath.Join(b.root, "testdata", "e2e", "typing.pkr.hcl"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "KILN_LOG_DIR="+logs, "KILN_CACHE_DIR="+filepath.Join(dir, "cache"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = time.Minute
	if err := cmd.Run(); err != nil {
		return 0, 0, fmt.Errorf("%w\n%s", err, out.Bytes())
	}
	m := typedIn.FindSubmatch(out.Bytes())
	if m == nil {
		return 0, 0, fmt.Errorf("no \"boot command typed in\" line in kiln's output:\n%s", out.Bytes())
	}
	d, err := time.ParseDuration(string(m[1]))
	if err != nil {
		return 0, 0, err
	}
	serials, _ := filepath.Glob(filepath.Join(logs, "*", "serial.log"))
	if len(serials) != 1 {
		return 0, 0, fmt.Errorf("want one serial log in %s, found %d", logs, len(serials))
	}
	serial, err := os.ReadFile(serials[0])
	if err != nil {
		return 0, 0, err
	}
	return d, typingErrors(string(serial), typingText), nil
}

// typingErrors counts the characters that arrived wrong. The guest reports
// the length and sha256 of what it received ("typed-sum"); when they match,
// nothing arrived wrong, whatever happened to the echo on its way out.
// Otherwise the edit distance between the echo and the text estimates the
// damage.
func typingErrors(serial, text string) int {
	sum := sha256.Sum256([]byte(text))
	want := fmt.Sprintf("kiln-installer: typed-sum: %d %x", len(text), sum)
	echo := ""
	for _, line := range strings.Split(serial, "\n") {
		line = strings.TrimRight(line, "\r")
		if line == want {
			return 0
		}
		if rest, ok := strings.CutPrefix(line, "kiln-installer: typed: "); ok && echo == "" {
			echo = rest
		}
	}
	return max(1, textdist.Distance(echo, text))
}
