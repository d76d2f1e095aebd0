package libvirt

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDialErrors(t *testing.T) {
	// A listener that accepts and never answers: Dial must give up at its
	// timeout instead of hanging in the RPC handshake.
	sock := filepath.Join(t.TempDir(), "mute.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	for uri, want := range map[string]string{
		"qemu+tls://h/system":                            "unsupported libvirt transport",
		"qemu:///nowhere":                                "want /system or /session",
		"qemu+unix:///system?socket=/nonexistent":        "no such file",
		"qemu+unix:///system?socket=" + sock:             "deadline exceeded",
		"qemu+ssh://u@h/system?keyfile=/nonexistent/key": "reading ssh keyfile",
	} {
		start := time.Now()
		_, err := Dial(context.Background(), uri, DialOptions{Timeout: 500 * time.Millisecond})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Dial(%s) = %v, want an error containing %q", uri, err, want)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("Dial(%s) took %s", uri, d)
		}
	}
}

func TestPickIPv4(t *testing.T) {
	mac := "52:54:00:aa:bb:cc"
	ifaces := []struct {
		name, hw string
		addrs    []string
	}{
		{"lo", "00:00:00:00:00:00", []string{"127.0.0.1"}},
		{"eth1", "52:54:00:00:00:01", []string{"10.0.0.9"}},
		{"eth0", "52:54:00:AA:BB:CC", []string{"fe80::1", "192.168.122.57"}},
	}
	var in []testIface
	for _, i := range ifaces {
		in = append(in, testIface{i.name, i.hw, i.addrs})
	}
	if got := pickIPv4(toInterfaces(in), mac); got != "192.168.122.57" {
		t.Errorf("pickIPv4 = %q, want the IPv4 address of the interface with the domain's MAC", got)
	}
	if got := pickIPv4(toInterfaces(in[:2]), mac); got != "" {
		t.Errorf("pickIPv4 without the MAC = %q, want none", got)
	}
}
