// Package qemu starts and drives a QEMU process for a build: it builds the
// command line (Args), runs QEMU (Start), picks the accelerator
// (ProbeAccel), forwards a host port to the guest over QMP
// (ForwardHostPort), reads the serial console (DialSerial) and takes
// screenshots (Screendump).
package qemu

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Drive is one disk or CD-ROM.
type Drive struct {
	Path         string
	Format       string // "qcow2", "raw", ...; "" lets QEMU probe (CD-ROMs)
	Interface    string // "virtio", "ide", "sata", "scsi", "virtio-scsi", "sd"; "" = QEMU's default (CD-ROMs: Spec.CDROMInterface)
	Cache        string // "writeback", "none", ...; "" = not passed
	Discard      string // "unmap", "ignore"; "" = not passed
	DetectZeroes string // "on", "unmap"; "" and "off" = not passed
	Media        string // "disk" (or "") or "cdrom"
	ReadOnly     bool
	// BootIndex, when set, puts the drive in the firmware's boot order
	// (QEMU's bootindex; lower boots first). OVMF ignores -boot, so under
	// UEFI this is the only way to say "the disk first, the installer CD
	// when the disk is still empty". Ignored for the "scsi" and "sd"
	// interfaces, which have no -device form here.
	BootIndex *int
}

// Spec is everything kiln puts on QEMU's command line. Empty fields are
// left out. Args turns it into argv.
type Spec struct {
	Binary   string // argv[0], e.g. "qemu-system-x86_64"
	Name     string // -name
	Machine  string // -machine type=MACHINE
	Accel    string // ",accel=ACCEL": "kvm", "tcg", ...; "none" = no accel= (Packer)
	CPUs     int    // -smp cpus=N when > 1 or a topology field is set
	Sockets  int    // optional -smp topology
	Cores    int
	Threads  int
	MemoryMB int    // -m NM
	CPUModel string // -cpu

	Drives         []Drive
	CDROMInterface string // interface of CD-ROMs whose Drive.Interface is ""

	Boot     string // -boot: "c", "once=d"; "" for EFI
	Firmware string // -bios
	EFICode  string // pflash unit 0, read-only
	EFIVars  string // pflash unit 1, read-write (a private copy)
	// EFIFormat is the pflash images' format: "" means raw; Fedora ships
	// qcow2 firmware (Packer hard-codes raw, packer-plugin-qemu#225).
	EFIFormat string

	// Direct kernel boot (kiln's boot_kernel): -kernel, -initrd, -append.
	Kernel string
	Initrd string
	Append string

	QMPSocket string // -qmp unix:PATH,server=on,wait=off
	// -chardev socket,id=serial0,... -serial chardev:serial0. No logfile=:
	// kiln's Console writes the transcript (see Console for why).
	SerialSocket string

	NetDevice string // NIC model for -device MODEL,netdev=user.0; "" = no network
	VNC       string // -vnc, e.g. "127.0.0.1:5,to=100"; "" = no VNC at all
	Display   string // -display; "" = "none" (kiln never opens a window unless asked)
	VGA       string // -vga
	Paused    bool   // -S: start paused so QMP and serial are connected before the guest runs

	// ExtraArgs is Packer's qemuargs: each entry is [switch, value parts...],
	// the parts concatenated into one value. See Args.
	ExtraArgs [][]string
}

// The ids kiln uses on the command line and over QMP.
const (
	NetdevID      = "user.0"  // Packer's id; templates' qemuargs refer to it
	SerialChardev = "serial0" // the chardev behind the guest's first serial port
)

// arg is one switch with its values; a switch with no values is a flag.
type arg struct {
	sw     string
	values []string
}

// Args builds QEMU's argv (argv[0] = s.Binary) from s. It is a pure
// function: the same Spec always gives the same argv.
//
// Defaults come out in a fixed switch order. s.ExtraArgs (Packer's
// qemuargs) follow Packer's rules: a switch named there REPLACES all of
// kiln's values for that switch, in place; switches kiln does not use are
// appended in the order they first appear; an entry with only a switch is
// a flag. Like Packer, when the user's -device list carries no NIC for the
// user network, kiln's NIC device is re-added (see netDeviceMissing).
//
// Some switches are how kiln operates QEMU and cannot be replaced: -qmp
// (the control socket), -serial and kiln's -chardev serial0 (the console
// kiln reads and logs). Args returns an error naming the entry instead of
// silently building a VM kiln cannot drive. Other -chardev entries are
// added next to kiln's.
func Args(s Spec) ([]string, error) {
	if s.Binary == "" {
		return nil, fmt.Errorf("qemu args: no QEMU binary")
	}
	defaults, err := defaultArgs(s)
	if err != nil {
		return nil, err
	}
	user, err := userArgs(s)
	if err != nil {
		return nil, err
	}

	var out []arg
	for _, d := range defaults {
		if u, ok := find(user, d.sw); ok && d.sw != "-chardev" {
			out = append(out, u)
			continue
		}
		out = append(out, d)
	}
	for _, u := range user {
		i := slices.IndexFunc(out, func(a arg) bool { return a.sw == u.sw })
		switch {
		case i < 0:
			out = append(out, u)
		case u.sw == "-chardev":
			// kiln's serial0 chardev stays; the user's come after it.
			out[i].values = append(slices.Clip(out[i].values), u.values...)
		}
	}
	if netDeviceMissing(s, out) {
		i := slices.IndexFunc(out, func(a arg) bool { return a.sw == "-device" })
		out[i].values = append(slices.Clip(out[i].values), s.NetDevice+",netdev="+NetdevID)
	}

	argv := []string{s.Binary}
	for _, a := range out {
		if len(a.values) == 0 {
			argv = append(argv, a.sw)
		}
		for _, v := range a.values {
			argv = append(argv, a.sw, v)
		}
	}
	return argv, nil
}

func find(args []arg, sw string) (arg, bool) {
	i := slices.IndexFunc(args, func(a arg) bool { return a.sw == sw })
	if i < 0 {
		return arg{}, false
	}
	return args[i], true
}

// defaultArgs is kiln's own command line, before qemuargs.
func defaultArgs(s Spec) ([]arg, error) {
	var out []arg
	add := func(sw string, values ...string) { out = append(out, arg{sw, values}) }

	if s.Name != "" {
		add("-name", s.Name)
	}
	switch {
	case s.Machine != "" && s.Accel != "" && s.Accel != "none":
		add("-machine", "type="+s.Machine+",accel="+s.Accel)
	case s.Machine != "":
		add("-machine", "type="+s.Machine)
	case s.Accel != "" && s.Accel != "none":
		add("-machine", "accel="+s.Accel)
	}
	if s.MemoryMB > 0 {
		add("-m", strconv.Itoa(s.MemoryMB)+"M")
	}
	if smp := smpArg(s); smp != "" {
		add("-smp", smp)
	}
	if s.CPUModel != "" {
		add("-cpu", s.CPUModel)
	}
	if s.Boot != "" {
		add("-boot", s.Boot)
	}
	if s.Kernel != "" {
		add("-kernel", s.Kernel)
		if s.Initrd != "" {
			add("-initrd", s.Initrd)
		}
		if s.Append != "" {
			add("-append", s.Append)
		}
	}
	if s.Firmware != "" {
		add("-bios", s.Firmware)
	}
	drives, devices, err := driveArgs(s)
	if err != nil {
		return nil, err
	}
	if s.NetDevice != "" {
		devices = append(devices, s.NetDevice+",netdev="+NetdevID)
	}
	if len(drives) > 0 {
		add("-drive", drives...)
	}
	if len(devices) > 0 {
		add("-device", devices...)
	}
	if s.NetDevice != "" {
		// No hostfwd here: kiln adds it over QMP once QEMU runs
		// (ForwardHostPort), so QEMU binds the port itself and a port
		// taken meanwhile by another build cannot make QEMU fail.
		add("-netdev", "user,id="+NetdevID)
	}
	if s.QMPSocket != "" {
		add("-qmp", "unix:"+esc(s.QMPSocket)+",server=on,wait=off")
	}
	if s.SerialSocket != "" {
		add("-chardev", "socket,id="+SerialChardev+",path="+esc(s.SerialSocket)+",server=on,wait=off")
		add("-serial", "chardev:"+SerialChardev)
	}
	if s.VNC != "" {
		add("-vnc", s.VNC)
	}
	if s.Display != "" {
		add("-display", s.Display)
	} else {
		add("-display", "none")
	}
	if s.VGA != "" {
		add("-vga", s.VGA)
	}
	if s.Paused {
		add("-S")
	}
	return out, nil
}

func smpArg(s Spec) string {
	if s.CPUs <= 1 && s.Sockets == 0 && s.Cores == 0 && s.Threads == 0 {
		return ""
	}
	var parts []string
	if s.CPUs > 0 {
		parts = append(parts, "cpus="+strconv.Itoa(s.CPUs))
	}
	for _, p := range []struct {
		k string
		v int
	}{{"sockets", s.Sockets}, {"cores", s.Cores}, {"threads", s.Threads}} {
		if p.v > 0 {
			parts = append(parts, p.k+"="+strconv.Itoa(p.v))
		}
	}
	return strings.Join(parts, ",")
}

// userArgs groups qemuargs by switch, keeping first-appearance order, and
// rejects entries that would take QEMU out of kiln's hands.
func userArgs(s Spec) ([]arg, error) {
	var out []arg
	for i, e := range s.ExtraArgs {
		if len(e) == 0 || !strings.HasPrefix(e[0], "-") {
			return nil, fmt.Errorf("qemuargs entry %d %q: must start with a switch such as \"-device\"", i, e)
		}
		sw, val := e[0], strings.Join(e[1:], "")
		if err := checkReserved(s, i, sw, val); err != nil {
			return nil, err
		}
		j := slices.IndexFunc(out, func(a arg) bool { return a.sw == sw })
		if j < 0 {
			out = append(out, arg{sw: sw})
			j = len(out) - 1
		}
		// As in Packer, an entry with no value only registers the switch:
		// alone it is a flag, next to valued entries it adds nothing.
		if val != "" {
			out[j].values = append(out[j].values, val)
		}
	}
	return out, nil
}

func checkReserved(s Spec, i int, sw, val string) error {
	why := ""
	switch {
	case sw == "-qmp" && s.QMPSocket != "":
		why = "kiln controls QEMU through its own QMP socket " + s.QMPSocket +
			" and replacing -qmp would remove it; for a second monitor use -chardev and -mon"
	case sw == "-serial" && s.SerialSocket != "":
		why = "kiln reads (and logs) the first serial port through chardev " + SerialChardev +
			" and replacing -serial would remove it"
	case sw == "-chardev" && s.SerialSocket != "" && hasOpt(val, "id", SerialChardev):
		why = "chardev id " + SerialChardev + " is kiln's serial console; choose another id"
	default:
		return nil
	}
	return fmt.Errorf("qemuargs entry %d [%s %q]: not allowed: %s", i, sw, val, why)
}

// hasOpt reports whether the QEMU option string v (k=v,k=v,...) sets key
// to want.
func hasOpt(v, key, want string) bool {
	for _, kv := range strings.Split(v, ",") {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key && val == want {
			return true
		}
	}
	return false
}

// netDeviceMissing reports whether kiln must re-add its NIC because the
// user's -device list replaced it without wiring a device to the user
// network. Packer (step_run.go, issue #6804) re-adds the NIC when no -device
// value contains the net_device model name; kiln instead checks what
// actually matters, a device with netdev=user.0, and only when user.0 still
// exists (a user who replaced -netdev with another id wired their own NIC,
// and adding ours would make QEMU fail on the missing user.0).
func netDeviceMissing(s Spec, out []arg) bool {
	if s.NetDevice == "" {
		return false
	}
	devs, ok := find(out, "-device")
	if !ok {
		return false // no -device at all cannot happen with a NetDevice
	}
	for _, d := range devs.values {
		if hasOpt(d, "netdev", NetdevID) {
			return false
		}
	}
	netdevs, _ := find(out, "-netdev")
	for _, n := range netdevs.values {
		if hasOpt(n, "id", NetdevID) {
			return true
		}
	}
	return false
}
