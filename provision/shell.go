package provision

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/kilnbuild/kiln/config"
	"github.com/kilnbuild/kiln/provision/ssh"
)

// Packer's defaults for the shell provisioner.
const (
	defaultShebang           = "/bin/sh -e"
	defaultRemoteFolder      = "/tmp"
	defaultExecuteCommand    = "chmod +x {{.Path}}; {{.Vars}} {{.Path}}"
	defaultStartRetryTimeout = 5 * time.Minute
)

// script is a script to run: its name for messages and its content.
type script struct {
	name string
	body []byte
}

// runShell uploads each script to the guest, runs it with
// execute_command and removes it.
func runShell(ctx context.Context, s *config.Shell, env Env) error {
	comm, err := env.comm("shell")
	if err != nil {
		return err
	}
	scripts, err := loadScripts(s.Inline, s.Script, s.Scripts, s.InlineShebang, env.Dir)
	if err != nil {
		return err
	}
	vars, err := flattenEnv(env, s.EnvironmentVars, s.Env)
	if err != nil {
		return err
	}
	remotePath := s.RemotePath
	if remotePath == "" {
		folder, file := s.RemoteFolder, s.RemoteFile
		if folder == "" {
			folder = defaultRemoteFolder
		}
		if file == "" {
			file = fmt.Sprintf("script_%d.sh", rand.IntN(9999))
		}
		remotePath = path.Join(folder, file)
	}
	command, err := renderExecuteCommand(s.ExecuteCommand, remotePath, vars)
	if err != nil {
		return err
	}
	valid := s.ValidExitCodes
	if len(valid) == 0 {
		valid = []int{0}
	}
	startRetry := defaultStartRetryTimeout
	if s.StartRetryTimeout != "" {
		if startRetry, err = time.ParseDuration(s.StartRetryTimeout); err != nil {
			return fmt.Errorf("start_retry_timeout: %w", err)
		}
	}

	for _, sc := range scripts {
		env.Say("Provisioning with shell script: %s", sc.name)
		// A reboot started by the previous script may drop the
		// connection mid-upload: retry, as Packer does, until
		// start_retry_timeout.
		err := retryDisconnected(ctx, startRetry, func() error {
			return comm.Upload(ctx, remotePath, bytes.NewReader(sc.body), 0o755)
		})
		if err != nil {
			return fmt.Errorf("uploading script %s to %s: %w", sc.name, remotePath, err)
		}
		status, err := comm.Run(ctx, command, nil, env.Stdout, env.Stderr)
		switch {
		case errors.Is(err, ssh.ErrDisconnected):
			if !s.ExpectDisconnect {
				return fmt.Errorf("script %s: %w (did the guest reboot, stop sshd or lose its network?); set expect_disconnect = true if that is expected", sc.name, err)
			}
			env.Say("Script %s disconnected, as expected", sc.name)
		case err != nil:
			return fmt.Errorf("running script %s: %w", sc.name, err)
		case !slices.Contains(valid, status):
			return fmt.Errorf("script %s exited with code %d (valid_exit_codes: %v)", sc.name, status, valid)
		}
		if s.SkipClean {
			continue
		}
		err = retryDisconnected(ctx, startRetry, func() error {
			status, err := comm.Run(ctx, "rm -f "+shellQuote(remotePath), nil, nil, env.Stderr)
			if err == nil && status != 0 {
				err = fmt.Errorf("rm exited with code %d", status)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("removing script %s from the guest: %w", remotePath, err)
		}
	}
	return nil
}

// loadScripts returns the scripts a shell or shell-local provisioner
// runs: inline lines as one script behind a shebang, or script/scripts
// read from disk with CRLF line ends turned into LF (Packer's default).
func loadScripts(inline []string, one string, many []string, shebang, dir string) ([]script, error) {
	set := 0
	for _, b := range []bool{len(inline) > 0, one != "", len(many) > 0} {
		if b {
			set++
		}
	}
	if set != 1 {
		return nil, errors.New("exactly one of inline, script or scripts must be set")
	}
	if len(inline) > 0 {
		if shebang == "" {
			shebang = defaultShebang
		}
		body := "#!" + shebang + "\n" + strings.Join(inline, "\n") + "\n"
		return []script{{name: "inline", body: []byte(body)}}, nil
	}
	if one != "" {
		many = []string{one}
	}
	var out []script
	for _, name := range many {
		body, err := os.ReadFile(localPath(dir, name))
		if err != nil {
			return nil, fmt.Errorf("reading script: %w", err)
		}
		out = append(out, script{name: name, body: bytes.ReplaceAll(body, []byte("\r\n"), []byte("\n"))})
	}
	return out, nil
}

// flattenEnv renders the script environment as Packer does: KEY='value'
// pairs sorted by key, each followed by a space, with single quotes in
// values escaped as '"'"'. env overrides environment_vars, which
// override the PACKER_* variables.
func flattenEnv(env Env, vars []string, m map[string]string) (string, error) {
	all := map[string]string{
		"PACKER_BUILD_NAME":   env.BuildName,
		"PACKER_BUILDER_TYPE": env.BuilderType,
	}
	if env.HTTPIP != "" {
		all["PACKER_HTTP_IP"] = env.HTTPIP
	}
	if env.HTTPPort != 0 {
		all["PACKER_HTTP_PORT"] = strconv.Itoa(env.HTTPPort)
	}
	if env.HTTPIP != "" && env.HTTPPort != 0 {
		all["PACKER_HTTP_ADDR"] = net.JoinHostPort(env.HTTPIP, strconv.Itoa(env.HTTPPort))
	}
	for _, kv := range vars {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return "", fmt.Errorf("environment_vars: %q is not in the form KEY=value", kv)
		}
		all[k] = v
	}
	for k, v := range m {
		if k == "" {
			return "", errors.New("env: empty variable name")
		}
		all[k] = v
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(all)) {
		fmt.Fprintf(&b, "%s='%s' ", k, strings.ReplaceAll(all[k], "'", `'"'"'`))
	}
	return b.String(), nil
}

// renderExecuteCommand fills execute_command's Go template.
func renderExecuteCommand(tmpl, scriptPath, vars string) (string, error) {
	if tmpl == "" {
		tmpl = defaultExecuteCommand
	}
	t, err := template.New("execute_command").Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return "", fmt.Errorf("execute_command: %w", err)
	}
	var b strings.Builder
	data := struct{ Path, Vars, EnvVarFile string }{scriptPath, vars, ""}
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("execute_command: %w", err)
	}
	return b.String(), nil
}

// retryDisconnected runs op again while it fails with ErrDisconnected,
// for up to limit. Each new call reconnects (waiting for the guest).
func retryDisconnected(ctx context.Context, limit time.Duration, op func() error) error {
	deadline := time.Now().Add(limit)
	for {
		err := op()
		if err == nil || !errors.Is(err, ssh.ErrDisconnected) || time.Now().After(deadline) {
			return err
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

// localPath resolves p against dir, keeping a trailing slash (which
// matters to the file provisioner).
func localPath(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	j := filepath.Join(dir, p)
	if strings.HasSuffix(p, "/") || strings.HasSuffix(p, string(filepath.Separator)) {
		j += string(filepath.Separator)
	}
	return j
}
