// Command kiln builds machine images from Packer-style HCL2 templates with
// QEMU. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at link time (-ldflags "-X main.version=...").
var version = "0.1.0-dev"

const usage = `Usage: kiln [--version] [--help] <command> [<args>]

Available commands are:
    build       build image(s) from a template
    validate    check that a template is valid
    inspect     show the variables, sources and builds of a template
    fmt         rewrite HCL2 templates in canonical style (-check, -diff, -write, -recursive)
    hcl2_upgrade
                convert a legacy JSON template to HCL2
    version     print the kiln version

Run "kiln <command> -h" for a command's flags.

Output for programs (anywhere on the command line):
    -machine-readable   Packer's format on stdout: timestamp,target,type,data...
                        (build, validate, inspect, version)
    --json              one JSON event per line on stdout (build, validate);
                        schema in README.md

Environment:
    KILN_LOG=1          debug mode: write a debug log (QEMU command line,
                        every QMP exchange, SSH attempts) to stderr, or to
                        KILN_LOG_PATH, and save a screenshot after each boot
                        step in the build's log directory
    KILN_LOG_PATH       file for the debug log (implies KILN_LOG=1)
    KILN_LOG_DIR        where per-build logs go (serial console, debug log,
                        failure screenshot); default $XDG_STATE_HOME/kiln/logs
    KILN_CACHE_DIR      download cache; default $XDG_CACHE_HOME/kiln
                        (PACKER_CACHE_DIR is honoured too)
    PKR_VAR_name        value of template variable "name"
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is main without the process: tests call it directly.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 1
	}
	// Ctrl-C and SIGTERM cancel the build; the pipeline then unwinds
	// (stops QEMU, removes temporary files) before kiln exits.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	args = hoistOutputFlags(args)
	var err error
	switch args[0] {
	case "build":
		err = cmdBuild(ctx, args[1:], stdin, stdout, stderr)
	case "validate":
		err = cmdValidate(args[1:], stdout, stderr)
	case "inspect":
		err = cmdInspect(args[1:], stdout, stderr)
	case "hcl2_upgrade":
		err = cmdUpgrade(args[1:], stdout, stderr)
	case "fmt":
		err = cmdFmt(args[1:], stdin, stdout, stderr)
	case "version", "-v", "--version", "-version":
		err = cmdVersion(args[1:], stdout, stderr)
	case "-h", "--help", "-help", "help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "kiln: unknown command %q\n\n%s", args[0], usage)
		return 1
	}
	var status exitStatus
	if errors.As(err, &status) {
		return int(status)
	}
	if err != nil {
		if !errors.Is(err, errReported) {
			fmt.Fprintf(stderr, "Error: %v\n", err)
		}
		return 1
	}
	return 0
}

// errReported means the details were already printed (diagnostics, build
// errors): main only sets the exit code.
var errReported = errors.New("reported")
