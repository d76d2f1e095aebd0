package builder

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kilnbuild/kiln/config"
	"github.com/kilnbuild/kiln/hypervisor/libvirt"
	"github.com/kilnbuild/kiln/hypervisor/qemu"
	"github.com/kilnbuild/kiln/pipeline"
)

// Libvirt step names.
const (
	StepLibvirtConnect  = "libvirt.connect"
	StepLibvirtDisk     = "libvirt.disk"
	StepLibvirtMedia    = "libvirt.media"
	StepLibvirtStart    = "libvirt.start"
	StepLibvirtBoot     = "libvirt.boot"
	StepLibvirtSSH      = "libvirt.ssh"
	StepLibvirtShutdown = "libvirt.shutdown"
	StepLibvirtDownload = "libvirt.download"
)

// LibvirtSteps are the steps of a build on libvirt (a libvirt source, or a
// qemu source with libvirt_uri). The local file handling, HTTP server,
// SSH key, provisioning, conversion and commit are the qemu build's steps;
// only the VM itself lives on the libvirt host, and every disk, ISO and
// CD goes there and back as a storage volume over the libvirt connection.
func LibvirtSteps() []pipeline.Step[State] {
	return []pipeline.Step[State]{
		{Name: StepOutputCheck, Run: stepOutputCheck},
		{Name: StepWorkdir, Run: stepWorkdir},
		{Name: StepFetch, Run: stepFetch},
		{Name: StepLibvirtConnect, Run: stepLibvirtConnect},
		{Name: StepLibvirtDisk, Run: stepLibvirtDisk},
		{Name: StepLibvirtMedia, Run: stepLibvirtMedia},
		{Name: StepHTTP, Run: stepHTTP},
		{Name: StepSSHKey, Run: stepSSHKey},
		{Name: StepLibvirtStart, Run: stepLibvirtStart},
		{Name: StepLibvirtBoot, Run: stepLibvirtBoot},
		{Name: StepLibvirtSSH, Run: stepLibvirtSSH},
		{Name: StepProvision, Run: stepProvision},
		{Name: StepLibvirtShutdown, Run: stepLibvirtShutdown},
		{Name: StepLibvirtDownload, Run: stepLibvirtDownload},
		{Name: StepConvert, Run: stepConvert},
		{Name: StepCommit, Run: stepCommit},
	}
}

// lvState is the libvirt part of State.
type lvState struct {
	cfg     *config.Libvirt
	uri     string
	conn    *libvirt.Conn
	dom     *libvirt.Domain
	name    string           // domain name, also the volume name prefix
	disks   []libvirt.Volume // main disk first, like State.Disks
	cdroms  []libvirt.Volume
	boot    []libvirt.Volume // boot_kernel and boot_initrd
	kernel  string           // boot_kernel/boot_initrd as paths on the libvirt host
	initrd  string
	guestIP string // where SSH reaches the guest
	httpIP  string // where the guest reaches kiln's HTTP server
	stopped bool   // the guest powered off: the disks are consistent

	stopConsole context.CancelFunc // ends the serial console stream

	mu sync.Mutex
}

// hostPools are shared by the builds of one kiln process, so parallel
// builds over the same libvirt_uris spread over those hosts.
var hostPools sync.Map // key: URIs and limit -> *libvirt.HostPool

func hostPool(lv *config.Libvirt) (*libvirt.HostPool, error) {
	key := fmt.Sprintf("%d\n%s", lv.HostLimit, strings.Join(lv.URIs, "\n"))
	if p, ok := hostPools.Load(key); ok {
		return p.(*libvirt.HostPool), nil
	}
	p, err := libvirt.NewHostPool(lv.URIs, lv.HostLimit)
	if err != nil {
		return nil, err
	}
	actual, _ := hostPools.LoadOrStore(key, p)
	return actual.(*libvirt.HostPool), nil
}

// connection returns a live connection: the build's, or a new one when
// a cancelled call closed it (cleanup after Ctrl-C must still reach the
// host).
func (lv *lvState) connection(ctx context.Context) (*libvirt.Conn, error) {
	lv.mu.Lock()
	defer lv.mu.Unlock()
	if lv.conn != nil && lv.conn.Alive() {
		return lv.conn, nil
	}
	if lv.conn != nil {
		lv.conn.Close()
	}
	c, err := libvirt.Dial(ctx, lv.uri, libvirt.DialOptions{})
	if err != nil {
		return nil, err
	}
	lv.conn = c
	if lv.dom != nil {
		if d, err := c.LookupDomain(ctx, lv.name); err == nil {
			lv.dom = d
		}
	}
	return c, nil
}

// stepLibvirtConnect picks a host (from the pool, if any), connects, and
// makes sure the storage pool and network are there and running.
func stepLibvirtConnect(ctx context.Context, st *State) (Undo, error) {
	cfg, u := st.Build.Libvirt, st.Opts.UI
	lv := &lvState{cfg: cfg, uri: cfg.URI, name: libvirt.DomainName(st.Build.Name)}
	st.LV = lv
	var release func()
	if len(cfg.URIs) > 0 {
		pool, err := hostPool(cfg)
		if err != nil {
			return nil, err
		}
		var ok bool
		if lv.uri, release, ok = pool.TryAcquire(); !ok {
			u.Say("Waiting for a libvirt host: all %d are at libvirt_host_limit %d", len(cfg.URIs), cfg.HostLimit)
			if lv.uri, release, err = pool.Acquire(ctx); err != nil {
				return nil, err
			}
		}
	}
	u.Say("Connecting to libvirt at %s", redactURI(lv.uri))
	c, err := libvirt.Dial(ctx, lv.uri, libvirt.DialOptions{})
	if err != nil {
		if release != nil {
			release()
		}
		return nil, err
	}
	lv.conn = c
	undo := func(context.Context) error {
		lv.mu.Lock()
		defer lv.mu.Unlock()
		if release != nil {
			release()
		}
		return lv.conn.Close()
	}
	dir := cfg.StoragePoolPath
	if dir == "" && cfg.StoragePool == "default" && strings.HasSuffix(lv.uri, "/system") {
		dir = "/var/lib/libvirt/images" // where libvirt's packaging puts it
	}
	if err := c.EnsurePool(ctx, cfg.StoragePool, dir); err != nil {
		return undo, err
	}
	var create *libvirt.NetworkSpec
	if cfg.Network == "default" {
		create = &libvirt.DefaultNetwork
	}
	if err := c.EnsureNetwork(ctx, cfg.Network, create); err != nil {
		return undo, err
	}
	lv.httpIP = cfg.HTTPIP
	if lv.httpIP == "" && st.needsHTTP() {
		ip, err := c.NetworkAddress(ctx, cfg.Network)
		if err != nil {
			return undo, fmt.Errorf("finding the host's address on network %s for {{ .HTTPIP }} (set http_ip): %w", cfg.Network, err)
		}
		lv.httpIP = ip
		if !isLocalURI(lv.uri) {
			u.Message("warning: http_ip defaults to %s, the remote host's address; the guest reaches kiln's HTTP server there only if kiln runs on that host. Set http_ip.", ip)
		}
	}
	return undo, nil
}

func (st *State) needsHTTP() bool {
	return st.Cfg.HTTPDirectory != "" || len(st.Cfg.HTTPContent) > 0
}

// httpIP is {{ .HTTPIP }}: QEMU's user-network alias of the host, or on
// libvirt the host's address on the guest's network (or http_ip).
func (st *State) httpIP() string {
	if st.LV != nil {
		return st.LV.httpIP
	}
	return guestHostIP
}

func isLocalURI(s string) bool {
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	if u.Host == "" {
		return true
	}
	host := u.Hostname()
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// redactURI hides a password in the URI's user info.
func redactURI(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

func (lv *lvState) volume(suffix, format string) libvirt.Volume {
	return libvirt.Volume{Pool: lv.cfg.StoragePool, Name: lv.name + suffix, Format: format}
}

// deleteVolumes is the undo of the volume steps.
func (st *State) deleteVolumes(vols *[]libvirt.Volume) Undo {
	return func(ctx context.Context) error {
		if st.keepWorkDir {
			return nil
		}
		c, err := st.LV.connection(ctx)
		if err != nil {
			return fmt.Errorf("deleting volumes %v: %w", *vols, err)
		}
		var errs []error
		for _, v := range *vols {
			if err := c.DeleteVolume(ctx, v); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
}

// stepLibvirtDisk puts the disks into the storage pool: a blank volume
// for ISO installs (created by libvirt, nothing uploaded), or the source
// image prepared locally exactly as the qemu build does (copy, convert,
// resize) and uploaded.
func stepLibvirtDisk(ctx context.Context, st *State) (Undo, error) {
	c, lv, u := st.Cfg, st.LV, st.Opts.UI
	if c.UseBackingFile {
		return nil, fmt.Errorf("use_backing_file is not supported on libvirt: the backing file would have to be on the libvirt host")
	}
	undo := st.deleteVolumes(&lv.disks)
	if !c.DiskImage {
		sizes := append([]int64{c.DiskSizeBytes}, c.AdditionalSizesBytes...)
		for i, size := range sizes {
			v := lv.volume(fmt.Sprintf("-disk%d.%s", i, c.WorkFormat), c.WorkFormat)
			u.Say("Creating %s volume %s/%s (%s)", c.WorkFormat, v.Pool, v.Name, sizeString(size))
			if err := lv.conn.CreateVolume(ctx, v, size); err != nil {
				return undo, err
			}
			lv.disks = append(lv.disks, v)
			st.Disks = append(st.Disks, filepath.Join(st.WorkDir, fmt.Sprintf("%s-%d", c.VMName, i)))
		}
		if len(st.Disks) > 0 {
			st.Disks[0] = filepath.Join(st.WorkDir, c.VMName)
		}
		return undo, nil
	}
	if _, err := stepDisk(ctx, st); err != nil {
		return undo, err
	}
	for i, d := range st.Disks {
		v := lv.volume(fmt.Sprintf("-disk%d.%s", i, c.WorkFormat), c.WorkFormat)
		u.Say("Uploading %s to volume %s/%s", filepath.Base(d), v.Pool, v.Name)
		// Register first: a half-uploaded volume must be deleted too.
		lv.disks = append(lv.disks, v)
		if err := lv.conn.UploadFile(ctx, v, d, nil); err != nil {
			return undo, err
		}
		// The local copy is only the upload's source; the download
		// replaces it at the end.
		os.Remove(d)
	}
	return undo, nil
}

// stepLibvirtMedia uploads the installer ISO and the cd_files ISO.
func stepLibvirtMedia(ctx context.Context, st *State) (Undo, error) {
	c, lv := st.Cfg, st.LV
	if _, err := stepMedia(ctx, st); err != nil {
		return nil, err
	}
	undoCDs, undoBoot := st.deleteVolumes(&lv.cdroms), st.deleteVolumes(&lv.boot)
	undo := func(ctx context.Context) error {
		return errors.Join(undoCDs(ctx), undoBoot(ctx))
	}
	// boot_kernel/boot_initrd go up as volumes too: the domain needs
	// their paths on the host, which may not be this machine.
	for _, f := range []struct {
		local, suffix string
		dst           *string
	}{{st.Kernel, "-kernel", &lv.kernel}, {st.Initrd, "-initrd", &lv.initrd}} {
		if f.local == "" {
			continue
		}
		v := lv.volume(f.suffix, "raw")
		lv.boot = append(lv.boot, v)
		if err := lv.conn.UploadFile(ctx, v, f.local, nil); err != nil {
			return undo, err
		}
		p, err := lv.conn.VolumePath(ctx, v)
		if err != nil {
			return undo, err
		}
		*f.dst = p
	}
	var isos []string
	if !c.DiskImage {
		isos = append(isos, st.Source)
	}
	isos = append(isos, st.CDs...)
	for i, iso := range isos {
		v := lv.volume(fmt.Sprintf("-cd%d.iso", i), "raw")
		st.Opts.UI.Say("Uploading %s to volume %s/%s", filepath.Base(iso), v.Pool, v.Name)
		lv.cdroms = append(lv.cdroms, v)
		if err := lv.conn.UploadFile(ctx, v, iso, nil); err != nil {
			return undo, err
		}
	}
	return undo, nil
}

// domainSpec maps the template to the domain. It is pure.
func domainSpec(c *config.QEMU, lv *config.Libvirt, name string, disks, cdroms []libvirt.Volume) libvirt.DomainSpec {
	typ := lv.DomainType
	if typ == "" {
		typ = "kvm"
		if c.Accelerator == "tcg" {
			typ = "qemu"
		}
	}
	cpu := c.CPUModel
	if cpu == "" && typ == "qemu" {
		cpu = "max" // see QEMUSpec: TCG guests starve for entropy otherwise
	}
	bus := lv.DiskBus
	if bus == "" {
		bus = map[string]string{"virtio-scsi": "scsi", "": "virtio"}[c.DiskInterface]
		if bus == "" {
			bus = c.DiskInterface
		}
	}
	machine := c.MachineType
	if machine == "pc" {
		machine = "" // libvirt's default names the versioned type itself
	}
	netModel := map[string]string{"virtio-net": "virtio", "virtio-net-pci": "virtio", "": "virtio"}[c.NetDevice]
	if netModel == "" {
		netModel = c.NetDevice
	}
	return libvirt.DomainSpec{
		Name: name, Type: typ, MemoryMiB: c.Memory, VCPUs: c.CPUs, Machine: machine, CPUModel: cpu,
		UEFI: c.EFIBoot, Disks: disks, CDROMs: cdroms, BootCDROM: !c.DiskImage && c.BootKernel == "",
		DiskBus: bus, Network: lv.Network, NetModel: netModel,
		VNC: !c.DisableVNC, VNCListen: c.VNCBindAddress,
	}
}

// consoleLog tees the libvirt console stream into the serial log and a
// qemu.Console (through a socket pair in RunDir), so boot_wait_serial and
// <waitSerial> work as in the qemu build.
func (st *State) openLibvirtConsole(ctx context.Context) error {
	lv := st.LV
	sock := filepath.Join(st.RunDir, "serial.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("serial console socket: %w", err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			accepted <- conn
		}
		close(accepted)
	}()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if st.Console, err = qemu.DialSerial(dctx, sock, ""); err != nil {
		return err
	}
	peer, ok := <-accepted
	if !ok {
		return fmt.Errorf("serial console socket: no connection")
	}
	logf, err := os.Create(st.serialLog())
	if err != nil {
		peer.Close()
		return fmt.Errorf("creating serial log: %w", err)
	}
	dom := lv.dom
	// The console lives until the domain stops or the start step's undo
	// stops it; the build's context ending must not cut the serial log
	// short before the undo read the guest's last words.
	cctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	lv.stopConsole = stop
	ended, err := dom.Console(cctx, &teeWriter{a: logf, b: peer})
	if err != nil {
		stop()
		logf.Close()
		peer.Close()
		return err
	}
	go func() {
		defer logf.Close()
		defer peer.Close()
		if err := <-ended; err != nil {
			st.Opts.Log.Debug("libvirt console ended", "err", err)
		}
		// The console ends when QEMU does: a domain that stopped when
		// nobody asked fails the build at once, as a dead QEMU does.
		if st.expectExit.Load() {
			return
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if c, err := lv.connection(rctx); err == nil {
			if d, err := c.LookupDomain(rctx, lv.name); err == nil {
				if running, err := d.Running(rctx); err == nil && !running && !st.expectExit.Load() {
					st.cancel(fmt.Errorf("%w: libvirt domain %s stopped", ErrQEMUExited, lv.name))
				}
			}
		}
	}()
	// The console stream does not always end when the domain is destroyed
	// (seen in e2e: the build only noticed at the SSH keepalive, 18 s
	// later), so also ask libvirt once a second.
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if st.expectExit.Load() {
				return
			}
			qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			running, err := dom.Running(qctx)
			cancel()
			if err == nil && !running && !st.expectExit.Load() {
				st.cancel(fmt.Errorf("%w: libvirt domain %s stopped", ErrQEMUExited, lv.name))
				return
			}
		}
	}()
	return nil
}

// teeWriter writes to both; the log keeps going when the socket's reader
// went away.
type teeWriter struct {
	a, b   interface{ Write([]byte) (int, error) }
	bError bool
}

func (t *teeWriter) Write(p []byte) (int, error) {
	if _, err := t.a.Write(p); err != nil {
		return 0, err
	}
	if !t.bError {
		if _, err := t.b.Write(p); err != nil {
			t.bError = true
		}
	}
	return len(p), nil
}
