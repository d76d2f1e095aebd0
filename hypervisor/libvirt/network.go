package libvirt

import (
	"context"
	"fmt"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"
)

// NetworkSpec describes a NAT network with the host at Address.
type NetworkSpec struct {
	Name    string
	Bridge  string // e.g. "virbr0"
	Address string // the host's address on the bridge, e.g. "192.168.122.1"
	Netmask string
	// DHCPStart/DHCPEnd enable libvirt's DHCP server (dnsmasq on the
	// host); empty means no DHCP and no DNS, so no dnsmasq is needed.
	DHCPStart, DHCPEnd string
}

// DefaultNetwork is libvirt's stock "default" network, created when a
// host has none.
var DefaultNetwork = NetworkSpec{
	Name: "default", Bridge: "virbr0", Address: "192.168.122.1", Netmask: "255.255.255.0",
	DHCPStart: "192.168.122.2", DHCPEnd: "192.168.122.254",
}

// NetworkXML renders s as libvirt network XML.
func NetworkXML(s NetworkSpec) (string, error) {
	n := &libvirtxml.Network{
		Name:    s.Name,
		Forward: &libvirtxml.NetworkForward{Mode: "nat"},
		Bridge:  &libvirtxml.NetworkBridge{Name: s.Bridge, STP: "on", Delay: "0"},
		IPs:     []libvirtxml.NetworkIP{{Address: s.Address, Netmask: s.Netmask}},
	}
	if s.DHCPStart != "" {
		n.IPs[0].DHCP = &libvirtxml.NetworkDHCP{Ranges: []libvirtxml.NetworkDHCPRange{{Start: s.DHCPStart, End: s.DHCPEnd}}}
	} else {
		n.DNS = &libvirtxml.NetworkDNS{Enable: "no"}
	}
	return n.Marshal()
}

// EnsureNetwork makes sure network name exists and is active. A missing
// network is defined from create when it is non-nil (DefaultNetwork for
// "default"), else it is an error.
func (c *Conn) EnsureNetwork(ctx context.Context, name string, create *NetworkSpec) error {
	return c.call(ctx, func() error {
		net, err := c.l.NetworkLookupByName(name)
		if isCode(err, golibvirt.ErrNoNetwork) && create != nil {
			x, merr := NetworkXML(*create)
			if merr != nil {
				return merr
			}
			if net, err = c.l.NetworkDefineXML(x); err != nil {
				return fmt.Errorf("defining network %s: %w", name, err)
			}
		} else if err != nil {
			return fmt.Errorf("looking up network %s: %w", name, err)
		}
		active, err := c.l.NetworkIsActive(net)
		if err != nil {
			return fmt.Errorf("checking network %s: %w", name, err)
		}
		if active == 0 {
			if err := c.l.NetworkCreate(net); err != nil {
				return fmt.Errorf("starting network %s (with DHCP it needs dnsmasq on the host): %w", name, err)
			}
		}
		return nil
	})
}

// NetworkAddress returns the host's IPv4 address on network name: where a
// guest on that network reaches a server on the libvirt host.
func (c *Conn) NetworkAddress(ctx context.Context, name string) (string, error) {
	var s string
	err := c.call(ctx, func() error {
		net, err := c.l.NetworkLookupByName(name)
		if err != nil {
			return err
		}
		s, err = c.l.NetworkGetXMLDesc(net, 0)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("reading network %s: %w", name, err)
	}
	var n libvirtxml.Network
	if err := n.Unmarshal(s); err != nil {
		return "", fmt.Errorf("parsing network %s: %w", name, err)
	}
	for _, ip := range n.IPs {
		if ip.Family == "" || ip.Family == "ipv4" {
			return ip.Address, nil
		}
	}
	return "", fmt.Errorf("network %s has no IPv4 address", name)
}

// DestroyNetwork stops and undefines network name (tests).
func (c *Conn) DestroyNetwork(ctx context.Context, name string) error {
	return c.call(ctx, func() error {
		net, err := c.l.NetworkLookupByName(name)
		if err != nil {
			return err
		}
		c.l.NetworkDestroy(net)
		return c.l.NetworkUndefine(net)
	})
}
