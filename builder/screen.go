package builder

import (
	"context"
	"path/filepath"
	"time"

	"github.com/kilnbuild/kiln/hypervisor/qemu"
	"github.com/kilnbuild/kiln/hypervisor/qmp"
)

// screenshotter saves what the VM's display shows as a PNG, atomically:
// QEMU's screendump over QMP, or virDomainScreenshot on libvirt. The
// failure screenshot and the debug-mode boot step screenshots go through
// it, so both builds save the same files.
type screenshotter interface {
	Screenshot(ctx context.Context, pngPath string) error
}

// qmpScreen is a local QEMU's display.
type qmpScreen struct{ c *qmp.Client }

func (s qmpScreen) Screenshot(ctx context.Context, pngPath string) error {
	return qemu.Screendump(ctx, s.c, pngPath)
}

// screen returns the running VM's display and how long a screenshot may
// take, or nil when no VM runs.
func (st *State) screen(ctx context.Context) (screenshotter, time.Duration) {
	if lv := st.LV; lv != nil {
		if lv.dom == nil || lv.stopped {
			return nil, 0
		}
		// A cancelled step's call closed the connection; a screenshot
		// after Ctrl-C needs a fresh one (which also refreshes lv.dom).
		if _, err := lv.connection(ctx); err != nil {
			return nil, 0
		}
		// The screenshot runs on a connection of its own (a timeout
		// there leaves the build's alone) and takes tens of milliseconds
		// locally; the bound is for a slow remote host.
		return lv.dom, 10 * time.Second
	}
	if st.QMP != nil && st.Proc != nil && !exited(st.Proc) {
		return qmpScreen{st.QMP}, 5 * time.Second
	}
	return nil, 0
}

// saveScreen saves the VM's display as name in LogDir and returns its
// path, or "" when there is no log directory or no running VM.
func (st *State) saveScreen(ctx context.Context, name string) (string, error) {
	if st.Opts.LogDir == "" {
		return "", nil
	}
	s, timeout := st.screen(ctx)
	if s == nil {
		return "", nil
	}
	png := filepath.Join(st.Opts.LogDir, name)
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return png, s.Screenshot(sctx, png)
}
