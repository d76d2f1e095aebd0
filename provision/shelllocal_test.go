package provision

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kilnbuild/kiln/config"
	"github.com/kilnbuild/kiln/internal/testutil"
)

func shellLocal(s config.ShellLocal) *config.Provisioner {
	return &config.Provisioner{Type: "shell-local", ShellLocal: &s}
}

func localEnv(t *testing.T) (Env, *testutil.Buffer) {
	out := &testutil.Buffer{}
	return Env{BuildName: "qemu.local", BuilderType: "qemu", Stdout: out, Stderr: out, Dir: t.TempDir()}, out
}

func TestShellLocalInlineAndEnv(t *testing.T) {
	env, out := localEnv(t)
	p := shellLocal(config.ShellLocal{
		Inline:          []string{`echo "$V|$PACKER_BUILD_NAME|${PACKER_HTTP_ADDR-unset}"`, `echo "script=$0"`, "pwd"},
		EnvironmentVars: []string{`V=it's $x`},
	})
	if err := Run(context.Background(), p, env); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || lines[0] != "it's $x|qemu.local|unset" {
		t.Fatalf("output %q", out.String())
	}
	// Runs in env.Dir, from a temporary script that is gone afterwards.
	if lines[2] != env.Dir {
		t.Errorf("pwd = %q, want %q", lines[2], env.Dir)
	}
	tmp := strings.TrimPrefix(lines[1], "script=")
	if !strings.Contains(tmp, "kiln-shell-local-") {
		t.Errorf("script path %q", tmp)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("temporary script left behind: %v", err)
	}
}

func TestShellLocalScriptCommandAndExecuteCommand(t *testing.T) {
	env, out := localEnv(t)
	// Script files run in place, so they can find files next to them.
	must(t, os.WriteFile(filepath.Join(env.Dir, "s.sh"), []byte("#!/bin/sh\ncat \"$(dirname \"$0\")/data\"\n"), 0o755))
	must(t, os.WriteFile(filepath.Join(env.Dir, "data"), []byte("DATA\n"), 0o644))
	if err := Run(context.Background(), shellLocal(config.ShellLocal{Script: "s.sh"}), env); err != nil {
		t.Fatal(err)
	}
	if out.String() != "DATA\n" {
		t.Errorf("script output %q", out.String())
	}

	env, out = localEnv(t)
	p := shellLocal(config.ShellLocal{
		Command:        "echo from-command",
		Env:            map[string]string{"K": "v"},
		ExecuteCommand: []string{"/bin/sh", "-c", "echo \"vars: {{.Vars}}\"; {{.Vars}} /bin/sh {{.Script}}"},
	})
	if err := Run(context.Background(), p, env); err != nil {
		t.Fatal(err)
	}
	// Inside the echo's double quotes the quoting of .Vars shows.
	want := "vars: K='v' PACKER_BUILDER_TYPE='qemu' PACKER_BUILD_NAME='qemu.local' \nfrom-command\n"
	if out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
}

func TestShellLocalValidExitCodes(t *testing.T) {
	env, _ := localEnv(t)
	p := shellLocal(config.ShellLocal{Inline: []string{"exit 4"}})
	err := Run(context.Background(), p, env)
	if err == nil || !strings.Contains(err.Error(), "exited with code 4") {
		t.Fatalf("err = %v", err)
	}
	p.ShellLocal.ValidExitCodes = []int{4}
	if err := Run(context.Background(), p, env); err != nil {
		t.Fatal(err)
	}
}

func TestShellLocalCancelKillsProcessGroup(t *testing.T) {
	env, out := localEnv(t)
	started := make(chan struct{})
	env.Stdout = writerFunc(func(p []byte) (int, error) {
		out.Write(p)
		select {
		case <-started:
		default:
			close(started)
		}
		return len(p), nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel()
	}()
	// A background child and a foreground one: both must die.
	p := shellLocal(config.ShellLocal{Inline: []string{"sleep 30 & echo $!", "wait"}})
	start := time.Now()
	err := Run(ctx, p, env)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("cancel took %s", d)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(out.String()))
	if err != nil {
		t.Fatalf("pid output %q", out.String())
	}
	// The orphaned sleep is reaped by init shortly after being killed;
	// until then signal 0 still finds the zombie, so allow a moment.
	deadline := time.Now().Add(3 * time.Second)
	for syscall.Kill(pid, 0) == nil && !isZombie(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("background child %d survived the cancel", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // gone
	}
	// The state follows the parenthesised command name.
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] == 'Z'
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestBreakpoint(t *testing.T) {
	said := &testutil.Buffer{}
	r, w := io.Pipe()
	env := Env{Stdin: r, Say: func(f string, a ...any) { said.Write([]byte(f + "\n")) }, Dir: t.TempDir()}
	p := &config.Provisioner{Type: "breakpoint", Breakpoint: &config.Breakpoint{Note: "look now"}}
	done := make(chan error, 1)
	go func() { done <- Run(context.Background(), p, env) }()
	select {
	case err := <-done:
		t.Fatalf("breakpoint returned before Enter: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	w.Write([]byte("\n"))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(said.String(), "Press enter to continue") {
		t.Errorf("said %q", said.String())
	}

	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- Run(ctx, p, env) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled breakpoint: %v", err)
	}
	w.Close()

	p.Breakpoint.Disable = true
	if err := Run(context.Background(), p, Env{Dir: t.TempDir()}); err != nil {
		t.Errorf("disabled breakpoint: %v", err)
	}
}
