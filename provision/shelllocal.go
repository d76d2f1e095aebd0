package provision

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/kilnbuild/kiln/config"
)

// defaultLocalExecute is Packer's execute_command for shell-local on
// Unix hosts.
var defaultLocalExecute = []string{"/bin/sh", "-c", "{{.Vars}} {{.Script}}"}

// runShellLocal runs scripts on the host running kiln.
func runShellLocal(ctx context.Context, s *config.ShellLocal, env Env) error {
	inline := s.Inline
	if s.Command != "" {
		if len(inline) > 0 {
			return errors.New("only one of command, inline, script or scripts may be set")
		}
		inline = []string{s.Command}
	}
	// Inline commands run from a temporary script; script files run in
	// place (by absolute path, as in Packer), so "$(dirname "$0")" works.
	type localScript struct{ name, path string }
	var scripts []localScript
	if len(inline) > 0 {
		loaded, err := loadScripts(inline, s.Script, s.Scripts, s.InlineShebang, env.Dir)
		if err != nil {
			return err
		}
		file, err := writeTempScript(loaded[0].body)
		if err != nil {
			return err
		}
		defer os.Remove(file)
		scripts = append(scripts, localScript{loaded[0].name, file})
	} else {
		if (s.Script != "") == (len(s.Scripts) > 0) {
			return errors.New("exactly one of command, inline, script or scripts must be set")
		}
		names := s.Scripts
		if s.Script != "" {
			names = []string{s.Script}
		}
		for _, n := range names {
			p, err := filepath.Abs(localPath(env.Dir, n))
			if err != nil {
				return err
			}
			if _, err := os.Stat(p); err != nil {
				return fmt.Errorf("script: %w", err)
			}
			scripts = append(scripts, localScript{n, p})
		}
	}
	vars, err := flattenEnv(env, s.EnvironmentVars, s.Env)
	if err != nil {
		return err
	}
	argvTmpl := s.ExecuteCommand
	if len(argvTmpl) == 0 {
		argvTmpl = defaultLocalExecute
	}
	var tmpls []*template.Template
	for i, a := range argvTmpl {
		t, err := template.New(fmt.Sprint("execute_command[", i, "]")).Option("missingkey=error").Parse(a)
		if err != nil {
			return fmt.Errorf("execute_command: %w", err)
		}
		tmpls = append(tmpls, t)
	}
	valid := s.ValidExitCodes
	if len(valid) == 0 {
		valid = []int{0}
	}

	for _, sc := range scripts {
		data := struct{ Vars, Script, Command string }{vars, sc.path, sc.path}
		argv := make([]string, len(tmpls))
		for i, t := range tmpls {
			var b strings.Builder
			if err := t.Execute(&b, data); err != nil {
				return fmt.Errorf("execute_command: %w", err)
			}
			argv[i] = b.String()
		}
		env.Say("Running local shell script: %s", sc.name)
		status, err := runLocal(ctx, argv, env.Dir, env.Stdout, env.Stderr)
		if err != nil {
			return fmt.Errorf("running local script %s: %w", sc.name, err)
		}
		if !slices.Contains(valid, status) {
			return fmt.Errorf("local script %s exited with code %d (valid_exit_codes: %v)", sc.name, status, valid)
		}
	}
	return nil
}

// writeTempScript writes an executable temporary script.
func writeTempScript(body []byte) (name string, err error) {
	f, err := os.CreateTemp("", "kiln-shell-local-*.sh")
	if err != nil {
		return "", fmt.Errorf("writing temporary script: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(body); err != nil {
		return "", fmt.Errorf("writing temporary script: %w", err)
	}
	if err := f.Chmod(0o700); err != nil {
		return "", fmt.Errorf("writing temporary script: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("writing temporary script: %w", err)
	}
	return filepath.Clean(f.Name()), nil
}

// runLocal runs argv in its own process group, which is killed as a
// whole if ctx ends, and returns the exit status.
func runLocal(ctx context.Context, argv []string, dir string, stdout, stderr io.Writer) (int, error) {
	if len(argv) == 0 || argv[0] == "" {
		return -1, errors.New("execute_command is empty")
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	killGroupOnCancel(cmd)
	// Grandchildren left holding stdout must not keep Run waiting.
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		return -1, ctx.Err()
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return exitStatus(ee), nil
	}
	if err != nil {
		return -1, err
	}
	return 0, nil
}
