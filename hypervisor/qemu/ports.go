package qemu

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/kilnbuild/kiln/hypervisor/qmp"
)

// ForwardHostPort forwards a TCP port on the host, chosen at random from
// [min, max], to guestPort in the guest, on the user-mode netdev (usually
// NetdevID) of a running QEMU, and returns the chosen port.
//
// Packer picks a port by probing it and then puts hostfwd= on QEMU's
// command line; between the probe and QEMU's bind another build can take
// the port, and QEMU then fails to start. Here QEMU binds the port itself
// (HMP hostfwd_add over QMP), so a taken port simply fails and the next
// one is tried: no race. bindAddr is the host address to listen on (""
// means all interfaces, as Packer does; kiln passes 127.0.0.1).
func ForwardHostPort(ctx context.Context, c *qmp.Client, netdev string, bindAddr string, min, max, guestPort int) (int, error) {
	if min < 1 || max > 65535 || min > max {
		return 0, fmt.Errorf("forwarding a host port: bad port range [%d, %d]", min, max)
	}
	ports := rand.Perm(max - min + 1)
	var last string
	for _, off := range ports {
		port := min + off
		rule := fmt.Sprintf("tcp:%s:%d-:%d", bindAddr, port, guestPort)
		out, err := hmp(ctx, c, "hostfwd_add "+netdev+" "+rule)
		if err != nil {
			return 0, fmt.Errorf("forwarding host port %d to guest port %d: %w", port, guestPort, err)
		}
		if out == "" {
			return port, nil // HMP prints nothing on success
		}
		// QEMU 7.2 reports every failure as text in the HMP output, not
		// as a QMP error. Only "Could not set up host forwarding rule"
		// (the bind failed: port in use) is worth another port; anything
		// else (unknown netdev, malformed rule) fails the same way for
		// every port.
		if !strings.HasPrefix(out, "Could not set up host forwarding rule") {
			return 0, fmt.Errorf("forwarding host port %d to guest port %d: hostfwd_add: %s", port, guestPort, out)
		}
		last = out
	}
	return 0, fmt.Errorf("forwarding a host port to guest port %d: every port in [%d, %d] is taken (last: %s)", guestPort, min, max, last)
}

// hmp runs a human monitor command and returns its output, trimmed.
func hmp(ctx context.Context, c *qmp.Client, cmdline string) (string, error) {
	var out string
	err := c.Execute(ctx, "human-monitor-command", map[string]string{"command-line": cmdline}, &out)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(out), nil
}
