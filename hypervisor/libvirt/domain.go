package libvirt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"
)

// Domain is a defined build VM.
type Domain struct {
	c   *Conn
	dom golibvirt.Domain
	// Name is the libvirt domain name.
	Name string
}

// Define defines (but does not start) a persistent domain from spec.
func (c *Conn) Define(ctx context.Context, spec DomainSpec) (*Domain, error) {
	x, err := DomainXML(spec)
	if err != nil {
		return nil, err
	}
	var dom golibvirt.Domain
	err = c.call(ctx, func() error {
		var err error
		dom, err = c.l.DomainDefineXML(x)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("defining domain %s: %w", spec.Name, err)
	}
	return &Domain{c: c, dom: dom, Name: spec.Name}, nil
}

// LookupDomain finds a domain by name (for cleanup on a fresh connection).
func (c *Conn) LookupDomain(ctx context.Context, name string) (*Domain, error) {
	var dom golibvirt.Domain
	err := c.call(ctx, func() error {
		var err error
		dom, err = c.l.DomainLookupByName(name)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("looking up domain %s: %w", name, err)
	}
	return &Domain{c: c, dom: dom, Name: name}, nil
}

// IsNotFound reports whether err says a domain, volume, pool or network
// does not exist.
func IsNotFound(err error) bool {
	return isCode(err, golibvirt.ErrNoDomain) || isCode(err, golibvirt.ErrNoStorageVol) ||
		isCode(err, golibvirt.ErrNoStoragePool) || isCode(err, golibvirt.ErrNoNetwork)
}

// Start boots the domain.
func (d *Domain) Start(ctx context.Context) error {
	err := d.c.call(ctx, func() error { return d.c.l.DomainCreate(d.dom) })
	if err != nil {
		return fmt.Errorf("starting domain %s: %w", d.Name, err)
	}
	return nil
}

// StartPaused boots the domain with its CPUs stopped, so a console can
// be attached before the guest prints anything; Resume lets it run.
func (d *Domain) StartPaused(ctx context.Context) error {
	err := d.c.call(ctx, func() error {
		_, err := d.c.l.DomainCreateWithFlags(d.dom, uint32(golibvirt.DomainStartPaused))
		return err
	})
	if err != nil {
		return fmt.Errorf("starting domain %s: %w", d.Name, err)
	}
	return nil
}

// Resume lets a paused domain run.
func (d *Domain) Resume(ctx context.Context) error {
	err := d.c.call(ctx, func() error { return d.c.l.DomainResume(d.dom) })
	if err != nil {
		return fmt.Errorf("resuming domain %s: %w", d.Name, err)
	}
	return nil
}

// Running reports whether the domain is running (or paused: anything
// but shut off and crashed).
func (d *Domain) Running(ctx context.Context) (bool, error) {
	var state int32
	err := d.c.call(ctx, func() error {
		var err error
		state, _, err = d.c.l.DomainGetState(d.dom, 0)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("reading the state of domain %s: %w", d.Name, err)
	}
	s := golibvirt.DomainState(state)
	return s != golibvirt.DomainShutoff && s != golibvirt.DomainCrashed, nil
}

// WaitStopped polls until the domain is shut off or ctx ends.
func (d *Domain) WaitStopped(ctx context.Context) error {
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		running, err := d.Running(cctx)
		cancel()
		if err != nil {
			return err
		}
		if !running {
			return nil
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Shutdown presses the ACPI power button.
func (d *Domain) Shutdown(ctx context.Context) error {
	err := d.c.call(ctx, func() error {
		return d.c.l.DomainShutdownFlags(d.dom, golibvirt.DomainShutdownAcpiPowerBtn)
	})
	if err != nil {
		return fmt.Errorf("ACPI shutdown of domain %s: %w", d.Name, err)
	}
	return nil
}

// Destroy stops the domain at once (power cut); a domain that is not
// running is not an error.
func (d *Domain) Destroy(ctx context.Context) error {
	err := d.c.call(ctx, func() error { return d.c.l.DomainDestroy(d.dom) })
	if err != nil && !isCode(err, golibvirt.ErrOperationInvalid) && !isCode(err, golibvirt.ErrNoDomain) {
		return fmt.Errorf("destroying domain %s: %w", d.Name, err)
	}
	return nil
}

// Undefine removes the domain's definition and its UEFI variable store;
// a domain that is already gone is not an error.
func (d *Domain) Undefine(ctx context.Context) error {
	err := d.c.call(ctx, func() error {
		return d.c.l.DomainUndefineFlags(d.dom, golibvirt.DomainUndefineNvram|golibvirt.DomainUndefineManagedSave)
	})
	if err != nil && !isCode(err, golibvirt.ErrNoDomain) {
		return fmt.Errorf("undefining domain %s: %w", d.Name, err)
	}
	return nil
}

// XML returns the live domain XML, parsed.
func (d *Domain) XML(ctx context.Context) (*libvirtxml.Domain, error) {
	var s string
	err := d.c.call(ctx, func() error {
		var err error
		s, err = d.c.l.DomainGetXMLDesc(d.dom, 0)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reading the XML of domain %s: %w", d.Name, err)
	}
	var x libvirtxml.Domain
	if err := x.Unmarshal(s); err != nil {
		return nil, fmt.Errorf("parsing the XML of domain %s: %w", d.Name, err)
	}
	return &x, nil
}

// VNCPort is the live VNC port (libvirt chooses it with autoport).
func (d *Domain) VNCPort(ctx context.Context) (int, error) {
	x, err := d.XML(ctx)
	if err != nil {
		return 0, err
	}
	for _, g := range x.Devices.Graphics {
		if g.VNC != nil && g.VNC.Port > 0 {
			return g.VNC.Port, nil
		}
	}
	return 0, fmt.Errorf("domain %s has no VNC port", d.Name)
}

// SendKeys presses codes (Linux input event codes) together, holds them
// for hold and releases them: virDomainSendKey.
func (d *Domain) SendKeys(ctx context.Context, codes []uint32, hold time.Duration) error {
	ms := uint32(hold / time.Millisecond)
	err := d.c.call(ctx, func() error {
		return d.c.l.DomainSendKey(d.dom, uint32(golibvirt.KeycodeSetLinux), ms, codes, 0)
	})
	if err != nil {
		return fmt.Errorf("sending keys to domain %s: %w", d.Name, err)
	}
	return nil
}

// Console opens the domain's serial console and streams it into w, in
// the background, until the domain stops or ctx ends; the stream's end
// arrives on the returned channel. It returns once the daemon set the
// console up (at most 30 s), so a domain started paused can be resumed
// without losing its first output. It works the same on remote hosts,
// and runs on a connection of its own (see wireConn).
func (d *Domain) Console(ctx context.Context, w io.Writer) (<-chan error, error) {
	ctx, cancel := context.WithCancel(ctx)
	wc, closeWire, err := dialWire(ctx, d.c.URI)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("serial console of domain %s: %w", d.Name, err)
	}
	var e xdrEncoder
	e.domain(d.dom)
	e.uint32(0) // no device name: the first console
	e.uint32(uint32(golibvirt.DomainConsoleForce))
	opened := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		defer cancel()
		defer closeWire()
		_, err := wc.download(procDomainOpenConsole, e.b, w, func() { close(opened) })
		if err != nil {
			err = fmt.Errorf("serial console of domain %s: %w", d.Name, ctxErr(ctx, err))
		}
		done <- err
	}()
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case <-opened:
		return done, nil
	case err := <-done:
		if err == nil { // opened, and the domain already stopped
			err = fmt.Errorf("serial console of domain %s ended at once", d.Name)
		}
		return nil, err
	case <-t.C:
		cancel()
		return nil, fmt.Errorf("serial console of domain %s: libvirt did not open it within 30s", d.Name)
	}
}

// MAC returns the MAC address of the domain's first interface (libvirt
// assigns one when the spec gives none).
func (d *Domain) MAC(ctx context.Context) (string, error) {
	x, err := d.XML(ctx)
	if err != nil {
		return "", err
	}
	for _, i := range x.Devices.Interfaces {
		if i.MAC != nil {
			return strings.ToLower(i.MAC.Address), nil
		}
	}
	return "", fmt.Errorf("domain %s has no network interface", d.Name)
}

// ErrNoAddress: the guest has no IPv4 address that libvirt knows of yet.
var ErrNoAddress = errors.New("no IPv4 address for the guest yet")

// GuestAddress is a guest's IPv4 address and where libvirt found it, so
// a build can say which source answered (a wrong ARP entry looks
// different from a lease).
type GuestAddress struct {
	IP     string
	Source string // "DHCP leases", "guest agent" or "ARP table"
}

// addressSources are asked in this order: a lease is authoritative for
// the network's own DHCP, the agent knows static addresses, and the ARP
// table is a guess from the guest's traffic.
var addressSources = []struct {
	src  golibvirt.DomainInterfaceAddressesSource
	name string
}{
	{golibvirt.DomainInterfaceAddressesSrcLease, "DHCP leases"},
	{golibvirt.DomainInterfaceAddressesSrcAgent, "guest agent"},
	{golibvirt.DomainInterfaceAddressesSrcArp, "ARP table"},
}

// Address asks libvirt for the guest's IPv4 address: the network's DHCP
// leases, then the guest agent, then the host's ARP table.
func (d *Domain) Address(ctx context.Context) (GuestAddress, error) {
	mac, err := d.MAC(ctx)
	if err != nil {
		return GuestAddress{}, err
	}
	var errs []error
	for _, s := range addressSources {
		var ifaces []golibvirt.DomainInterface
		err := d.c.call(ctx, func() error {
			var err error
			ifaces, err = d.c.l.DomainInterfaceAddresses(d.dom, uint32(s.src), 0)
			return err
		})
		if err != nil {
			if ctx.Err() != nil {
				return GuestAddress{}, err
			}
			// No agent configured, or ARP unsupported: try the next.
			errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
			continue
		}
		if ip := pickIPv4(ifaces, mac); ip != "" {
			return GuestAddress{IP: ip, Source: s.name}, nil
		}
	}
	return GuestAddress{}, errors.Join(append([]error{ErrNoAddress}, errs...)...)
}

// pickIPv4 returns the first IPv4 address of the interface with mac (any
// non-loopback interface when mac is empty).
func pickIPv4(ifaces []golibvirt.DomainInterface, mac string) string {
	for _, i := range ifaces {
		if mac != "" && (len(i.Hwaddr) == 0 || !strings.EqualFold(i.Hwaddr[0], mac)) {
			continue
		}
		for _, a := range i.Addrs {
			ip := net.ParseIP(a.Addr)
			if ip != nil && ip.To4() != nil && !ip.IsLoopback() {
				return a.Addr
			}
		}
	}
	return ""
}

// WaitAddress polls Address until it finds one or ctx ends.
func (d *Domain) WaitAddress(ctx context.Context) (GuestAddress, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, 15*time.Second)
		a, err := d.Address(actx)
		cancel()
		if err == nil {
			return a, nil
		}
		if !errors.Is(err, ErrNoAddress) {
			return GuestAddress{}, err
		}
		select {
		case <-ctx.Done():
			return GuestAddress{}, fmt.Errorf("waiting for the guest's IP address (DHCP lease, guest agent or ARP): %w", context.Cause(ctx))
		case <-time.After(time.Second):
		}
	}
}
