package e2e

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/kilnbuild/kiln/hypervisor/libvirt"
)

// dhcpNetwork is a NAT network with libvirt's DHCP server (dnsmasq on the
// host), apart from kiln-e2e: its own bridge and subnet.
var dhcpNetwork = libvirt.NetworkSpec{
	Name: "kiln-e2e-dhcp", Bridge: "kilnbr-dhcp", Address: "10.0.99.1", Netmask: "255.255.255.0",
	DHCPStart: "10.0.99.100", DHCPEnd: "10.0.99.199",
}

// udhcpcScript applies the lease busybox udhcpc got (it calls the script
// with the lease in the environment; mask is a prefix length) and says
// the address on the serial console.
const udhcpcScript = `#!/bin/sh
case "$1" in
bound|renew)
	ip addr add "$ip/$mask" dev "$interface"
	for r in $router; do
		ip route add default via "$r" dev "$interface"
		break
	done
	echo "kiln-guest: dhcp address $ip" >/dev/console
	;;
esac
`

// TestLibvirtDHCP builds a guest that takes its address from libvirt's
// dnsmasq, without ssh_host: kiln must find the address in the network's
// DHCP leases, and SSH, the provisioners and the artifact must work
// through it. The network is removed afterwards, dnsmasq included.
func TestLibvirtDHCP(t *testing.T) {
	requireLibvirt(t)
	useNetwork(t, &dhcpNetwork)
	if !dnsmasqRunning(t, dhcpNetwork.Name) {
		t.Fatalf("network %s is active but no dnsmasq serves it (make setup installs dnsmasq-base)", dhcpNetwork.Name)
	}

	guest := guestWithNet(t,
		`udhcpc -i eth0 -n -q -t 10 -T 2 -s /etc/udhcpc.script || say "ERROR: no DHCP lease"`,
		map[string]string{"etc/udhcpc.script": udhcpcScript})
	e := newEnv(t)
	out := filepath.Join(e.Dir, "out")
	k := e.start(t, "build", "-var", "guest_dir="+guest, "-var", "out="+out, "-var", "network="+dhcpNetwork.Name, template("libvirt-dhcp.pkr.hcl"))
	code, took := k.wait(10 * time.Minute)
	log := k.output()
	if code != 0 {
		t.Fatalf("kiln build exited %d:\n%s", code, log)
	}
	t.Logf("build with the address from DHCP took %s", took.Round(time.Second))
	e.assertClean(t)
	assertNoLibvirtLeftovers(t)
	checkLibvirtOutput(t, e, out, "dhcp", "dhcp", "qcow2")

	// The address the guest got, as it printed it, is the one kiln found
	// in the leases and connected to.
	m := regexp.MustCompile(`(?m)^kiln-guest: dhcp address (\S+)\r?$`).FindAllStringSubmatch(serialLog(t, e), -1)
	if len(m) != 1 {
		t.Fatalf("the guest did not print one DHCP address on its serial console: %v", m)
	}
	addr := m[0][1]
	lo, hi := netip.MustParseAddr(dhcpNetwork.DHCPStart), netip.MustParseAddr(dhcpNetwork.DHCPEnd)
	if a, err := netip.ParseAddr(addr); err != nil || a.Less(lo) || hi.Less(a) {
		t.Fatalf("the guest's address %q is not in the network's DHCP range %s-%s", addr, lo, hi)
	}
	found := regexp.MustCompile(`guest address (\S+) \(from ([^)]*)\)`).FindAllStringSubmatch(log, -1)
	if len(found) != 1 || found[0][1] != addr || found[0][2] != "DHCP leases" {
		t.Errorf("kiln reported %v, want guest address %s from DHCP leases:\n%s", found, addr, log)
	}
	if !strings.Contains(log, "Waiting for SSH on "+addr+":22") {
		t.Errorf("kiln did not wait for SSH on %s:\n%s", addr, log)
	}
	// sshd's view: the connection came from the host's address on the
	// network and reached the leased address.
	conn := strings.Fields(readGuestFile(t, filepath.Join(out, "dhcp", "guest"), "ssh_connection.txt"))
	if len(conn) != 4 || conn[0] != dhcpNetwork.Address || conn[2] != addr {
		t.Errorf("SSH_CONNECTION in the guest = %q, want %s PORT %s 22", conn, dhcpNetwork.Address, addr)
	}
	t.Logf("the guest took %s by DHCP; its sshd saw the connection %q", addr, conn)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := libvirt.Dial(ctx, "qemu:///system", libvirt.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	assertLease(ctx, t, c, addr)

	// Removing the network stops its dnsmasq and removes its bridge.
	if err := c.DestroyNetwork(ctx, dhcpNetwork.Name); err != nil {
		t.Fatalf("removing network %s: %v", dhcpNetwork.Name, err)
	}
	if _, err := c.Raw().NetworkLookupByName(dhcpNetwork.Name); !isLibvirtCode(err, golibvirt.ErrNoNetwork) {
		t.Errorf("network %s still there after removing it: %v", dhcpNetwork.Name, err)
	}
	if dnsmasqRunning(t, dhcpNetwork.Name) {
		t.Errorf("dnsmasq of %s still runs after the network was removed", dhcpNetwork.Name)
	}
	if _, err := os.Stat(filepath.Join("/sys/class/net", dhcpNetwork.Bridge)); !os.IsNotExist(err) {
		t.Errorf("bridge %s still there after the network was removed (%v)", dhcpNetwork.Bridge, err)
	}
}

// assertLease checks that libvirt lists a lease of addr on the network:
// the guest's DHCP went through libvirt's dnsmasq, not something else on
// the bridge.
func assertLease(ctx context.Context, t *testing.T, c *libvirt.Conn, addr string) {
	t.Helper()
	n, err := c.Raw().NetworkLookupByName(dhcpNetwork.Name)
	if err != nil {
		t.Fatal(err)
	}
	leases, _, err := c.Raw().NetworkGetDhcpLeases(n, golibvirt.OptString{}, 1, 0)
	if err != nil {
		t.Fatalf("listing the leases of %s: %v", dhcpNetwork.Name, err)
	}
	var ips []string
	for _, l := range leases {
		if l.Ipaddr == addr {
			return
		}
		ips = append(ips, l.Ipaddr)
	}
	t.Errorf("network %s has no lease of %s (leases: %v)", dhcpNetwork.Name, addr, ips)
}

// dnsmasqRunning reports whether a dnsmasq runs with libvirt's config
// file for network name.
func dnsmasqRunning(t *testing.T, name string) bool {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // exited meanwhile
		}
		args := strings.Split(string(b), "\x00")
		if filepath.Base(args[0]) == "dnsmasq" && strings.Contains(string(b), "/"+name+".conf") {
			return true
		}
	}
	return false
}

func isLibvirtCode(err error, code golibvirt.ErrorNumber) bool {
	var e golibvirt.Error
	return errors.As(err, &e) && e.Code == uint32(code)
}
