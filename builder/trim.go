package builder

import (
	"context"
	"errors"

	"github.com/kilnbuild/kiln/provision/ssh"
)

// trimCommand discards the free space of every mounted block-device
// filesystem. util-linux fstrim does that with -a; busybox's fstrim (the
// test guest's) has no -a, so the fallback walks /proc/mounts itself. It
// succeeds if any filesystem was trimmed.
const trimCommand = `fstrim -av 2>/dev/null || {
	rc=1
	while read -r dev mp rest; do
		case $dev in /dev/*) fstrim -v "$mp" && rc=0 ;; esac
	done </proc/mounts
	exit $rc
}`

// trimGuest runs fstrim in the guest (trim_before_shutdown), so blocks the
// guest freed reach QEMU as discards (disk_discard = "unmap") and drop out
// of the working disk, and from there out of the exported image. A guest
// whose filesystems cannot be trimmed still gets built: the image is only
// larger, so this warns.
func (st *State) trimGuest(ctx context.Context) error {
	if !st.Cfg.TrimBeforeShutdown || st.Comm == nil {
		return nil
	}
	u := st.Opts.UI
	u.Say("Trimming free space in the guest")
	w := u.Writer()
	code, err := st.Comm.Run(ctx, trimCommand, nil, w, w)
	w.Flush()
	switch {
	case err != nil && (ctx.Err() != nil || errors.Is(err, ssh.ErrDisconnected)):
		return err
	case err != nil:
		u.Error("trim_before_shutdown: fstrim failed: %v", err)
	case code != 0:
		u.Error("trim_before_shutdown: fstrim exited with status %d; the image keeps the free space the guest did not trim", code)
	}
	return nil
}
