package config

import (
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// attrRef names the qemu option a diagnostic from prepare is about. Load
// turns it into the attribute's source range; prepare itself stays a pure
// function of the decoded struct.
type attrRef string

func errAt(attr, summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Extra: attrRef(attr)}
}

func warnAt(attr, summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: summary, Detail: detail, Extra: attrRef(attr)}
}

// Allowed values, from packer-plugin-qemu's config.go.
var (
	accelerators     = []string{"none", "kvm", "tcg", "xen", "hax", "hvf", "whpx"}
	diskInterfaces   = []string{"ide", "sata", "scsi", "sd", "virtio", "virtio-scsi"}
	diskCaches       = []string{"writethrough", "writeback", "none", "unsafe", "directsync"}
	diskDiscards     = []string{"unmap", "ignore"}
	diskDetectZeroes = []string{"unmap", "on", "off"}
	keyPairTypes     = []string{"ed25519", "ecdsa", "rsa"}
)

// prepare applies Packer's defaults to q and validates it, filling the
// parsed fields. buildName is Packer's packer_build_name, which for HCL2
// templates is the source block's label: it names the default
// output_directory ("output-NAME") and vm_name ("packer-NAME").
//
// Deliberate differences from Packer: http_bind_address defaults to
// 127.0.0.1 (Packer: 0.0.0.0), temporary_key_pair_type to ed25519
// (Packer: rsa), and an empty accelerator stays empty, meaning "decide at
// build time", instead of being probed here.
func (q *QEMU) prepare(buildName string) hcl.Diagnostics {
	var diags hcl.Diagnostics
	add := func(d ...*hcl.Diagnostic) { diags = append(diags, d...) }

	add(q.prepareSource()...)
	add(q.prepareDisk()...)
	add(q.prepareMachine()...)
	add(q.prepareNetwork()...)
	add(q.prepareBoot()...)
	add(q.prepareCommunicator()...)

	if q.OutputDirectory == "" {
		q.OutputDirectory = "output-" + buildName
	}
	if q.VMName == "" {
		q.VMName = "packer-" + buildName
	}
	if q.CDLabel == "" {
		q.CDLabel = "packer"
	}
	var more hcl.Diagnostics
	q.ShutdownTimeoutDur, more = parseDur("shutdown_timeout", &q.ShutdownTimeout, "5m")
	add(more...)
	return diags
}

func (q *QEMU) prepareSource() hcl.Diagnostics {
	var diags hcl.Diagnostics
	switch {
	case q.ISOURL != "" && len(q.ISOURLs) > 0:
		diags = append(diags, errAt("iso_urls", "Both iso_url and iso_urls are set",
			"Use iso_url for one location or iso_urls for mirrors tried in order, not both."))
	case q.ISOURL == "" && len(q.ISOURLs) == 0:
		what := "the installer ISO"
		if q.DiskImage {
			what = "the disk image"
		}
		diags = append(diags, errAt("iso_url", "Missing iso_url",
			fmt.Sprintf("Set iso_url (or iso_urls) to the URL or path of %s.", what)))
	}
	for _, u := range q.ISOURLs {
		if u == "" {
			diags = append(diags, errAt("iso_urls", "Empty entry in iso_urls", "Remove the empty string from iso_urls."))
		}
	}
	switch {
	case q.ISOChecksum == "":
		diags = append(diags, errAt("iso_checksum", "Missing iso_checksum",
			`Set iso_checksum to "sha256:<hex>", "file:<url of a SHA256SUMS file>", or "none" to skip verification.`))
	case q.ISOChecksum == "none":
		diags = append(diags, warnAt("iso_checksum", "iso_checksum is none",
			"The download will not be verified; a checksum is highly recommended for large images."))
	default:
		if err := checkChecksumSyntax(q.ISOChecksum); err != nil {
			diags = append(diags, errAt("iso_checksum", "Invalid iso_checksum", err.Error()))
		}
	}
	if q.ISOTargetExt == "" {
		q.ISOTargetExt = "iso"
	}
	q.ISOTargetExt = strings.ToLower(q.ISOTargetExt)
	return diags
}

func (q *QEMU) prepareDisk() hcl.Diagnostics {
	var diags hcl.Diagnostics
	if q.DiskSize == "" || q.DiskSize == "0" {
		q.DiskSize = "40960M"
	}
	if n, bare, err := parseSize(q.DiskSize); err != nil {
		diags = append(diags, errAt("disk_size", "Invalid disk_size", err.Error()))
	} else {
		q.DiskSizeBytes = n
		if bare {
			q.DiskSize += "M" // as Packer does, so later code sees the unit
		}
	}
	q.AdditionalSizesBytes = nil
	for _, s := range q.DiskAdditionalSize {
		n, _, err := parseSize(s)
		if err != nil {
			diags = append(diags, errAt("disk_additional_size", "Invalid disk_additional_size", err.Error()))
			continue
		}
		q.AdditionalSizesBytes = append(q.AdditionalSizesBytes, n)
	}

	diags = append(diags, q.prepareOutput()...)
	diags = append(diags, defaultEnum("disk_interface", &q.DiskInterface, "virtio", diskInterfaces)...)
	diags = append(diags, defaultEnum("disk_cache", &q.DiskCache, "writeback", diskCaches)...)
	diags = append(diags, defaultEnum("disk_discard", &q.DiskDiscard, "ignore", diskDiscards)...)
	diags = append(diags, defaultEnum("disk_detect_zeroes", &q.DiskDetectZeroes, "off", diskDetectZeroes)...)

	if q.Format != "qcow2" {
		// Packer: compaction and compression are qcow2 features.
		q.SkipCompaction = true
		q.DiskCompression = false
	}
	if q.UseBackingFile {
		q.SkipCompaction = true
		if !q.DiskImage || q.WorkFormat != "qcow2" {
			diags = append(diags, errAt("use_backing_file", "use_backing_file needs disk_image = true and format = \"qcow2\"",
				"A backing file is a qcow2 overlay over the downloaded disk image: set disk_image = true and format = \"qcow2\", or drop use_backing_file."))
		}
	}
	if q.SkipResizeDisk && !q.DiskImage {
		diags = append(diags, errAt("skip_resize_disk", "skip_resize_disk needs disk_image = true",
			"Only a downloaded disk image is resized; an ISO install creates the disk at disk_size. Remove skip_resize_disk."))
	}
	return diags
}

func (q *QEMU) prepareMachine() hcl.Diagnostics {
	var diags hcl.Diagnostics
	if q.Accelerator != "" && !slices.Contains(accelerators, q.Accelerator) {
		diags = append(diags, errAt("accelerator", "Invalid accelerator",
			fmt.Sprintf("accelerator is %q: use one of %s, or leave it unset to pick kvm when /dev/kvm is usable and tcg otherwise.",
				q.Accelerator, strings.Join(accelerators, ", "))))
	}
	if q.MachineType == "" {
		q.MachineType = "pc"
	}
	if q.Memory < 10 {
		q.Memory = 512 // Packer's fallback for unset or nonsensical sizes
	}
	if q.CPUs < 1 {
		q.CPUs = 1
	}
	if q.QEMUBinary == "" {
		q.QEMUBinary = "qemu-system-x86_64"
	}
	if q.EFICode != "" || q.EFIVars != "" {
		q.EFIBoot = true // Packer turns EFI on when firmware files are given
	}
	for i, arg := range q.QEMUArgs {
		if len(arg) == 0 || arg[0] == "" {
			diags = append(diags, errAt("qemuargs", "Empty qemuargs entry",
				fmt.Sprintf("qemuargs[%d] is empty: each entry is [\"-switch\", \"value\", ...]. Remove it or give the switch.", i)))
		}
	}
	return diags
}

func (q *QEMU) prepareNetwork() hcl.Diagnostics {
	var diags hcl.Diagnostics
	if q.NetDevice == "" {
		q.NetDevice = "virtio-net"
	}
	defInt(&q.HostPortMin, 2222)
	defInt(&q.HostPortMax, 4444)
	diags = append(diags, portRange("host_port", q.HostPortMin, q.HostPortMax, 1)...)

	if q.VNCBindAddress == "" {
		q.VNCBindAddress = "127.0.0.1"
	}
	defInt(&q.VNCPortMin, 5900)
	defInt(&q.VNCPortMax, 6000)
	// QEMU takes a display number, port-5900, so lower ports cannot work.
	diags = append(diags, portRange("vnc_port", q.VNCPortMin, q.VNCPortMax, 5900)...)

	defInt(&q.HTTPPortMin, 8000)
	defInt(&q.HTTPPortMax, 9000)
	diags = append(diags, portRange("http_port", q.HTTPPortMin, q.HTTPPortMax, 0)...)
	if q.HTTPBindAddress == "" {
		q.HTTPBindAddress = "127.0.0.1" // kiln: QEMU's user network reaches host loopback
	}
	if q.HTTPDirectory != "" && len(q.HTTPContent) > 0 {
		diags = append(diags, errAt("http_content", "http_directory and http_content are both set",
			"Serve files either from a directory (http_directory) or from memory (http_content), not both."))
	}
	return diags
}

func portRange(prefix string, lo, hi, floor int) hcl.Diagnostics {
	var diags hcl.Diagnostics
	if lo < floor {
		diags = append(diags, errAt(prefix+"_min", "Invalid "+prefix+"_min",
			fmt.Sprintf("%s_min is %d; it cannot be below %d.", prefix, lo, floor)))
	}
	if lo > 65535 || hi > 65535 {
		diags = append(diags, errAt(prefix+"_max", "Invalid "+prefix+" range",
			fmt.Sprintf("%s_min and %s_max must be TCP ports (at most 65535).", prefix, prefix)))
	}
	if lo > hi {
		diags = append(diags, errAt(prefix+"_min", prefix+"_min is above "+prefix+"_max",
			fmt.Sprintf("%s_min is %d and %s_max is %d: swap them or widen the range.", prefix, lo, prefix, hi)))
	}
	return diags
}

func (q *QEMU) prepareBoot() hcl.Diagnostics {
	var diags hcl.Diagnostics
	var more hcl.Diagnostics
	q.BootWaitDur, more = parseDur("boot_wait", &q.BootWait, "10s")
	diags = append(diags, more...)
	if q.BootWaitDur < 0 {
		q.BootWaitDur = 0 // Packer: a negative boot_wait means no wait at all
	}
	q.BootKeyIntervalDur, more = parseDur("boot_key_interval", &q.BootKeyInterval, "100ms")
	diags = append(diags, more...)
	if len(q.BootCommand) > 0 && len(q.BootSteps) > 0 {
		diags = append(diags, errAt("boot_steps", "boot_command and boot_steps are both set",
			"Use boot_command for plain key input or boot_steps for [keys, description] pairs, not both."))
	}
	switch q.BootCommandTransport {
	case "":
		q.BootCommandTransport = "qmp"
	case "qmp", "vnc":
	default:
		diags = append(diags, errAt("boot_command_transport", "Invalid boot_command_transport",
			fmt.Sprintf("boot_command_transport is %q; use \"qmp\" (keys over QMP, no VNC needed) or \"vnc\".", q.BootCommandTransport)))
	}
	// kiln types over QMP by default, so disable_vnc only matters when
	// the template asks for VNC typing.
	if q.DisableVNC && q.BootCommandTransport == "vnc" && (len(q.BootCommand) > 0 || len(q.BootSteps) > 0) {
		diags = append(diags, errAt("disable_vnc", "A boot command cannot be typed over VNC with disable_vnc = true",
			"Remove disable_vnc, or type over QMP (boot_command_transport = \"qmp\", the default)."))
	}
	q.BootWaitSerialDur, more = parseDur("boot_wait_serial_timeout", &q.BootWaitSerialTimeout, "5m")
	diags = append(diags, more...)
	q.HTTPWaitFetchedDur, more = parseDur("http_wait_fetched_timeout", &q.HTTPWaitFetchedTimeout, "5m")
	diags = append(diags, more...)
	if len(q.HTTPWaitFetched) > 0 && q.HTTPDirectory == "" && len(q.HTTPContent) == 0 {
		diags = append(diags, errAt("http_wait_fetched", "http_wait_fetched needs an HTTP server",
			"Set http_directory or http_content: http_wait_fetched names files they serve."))
	}
	if (q.BootKernel == "") != (q.BootInitrd == "") && q.BootInitrd != "" {
		diags = append(diags, errAt("boot_initrd", "boot_initrd without boot_kernel",
			"Set boot_kernel (the kernel's path inside the ISO) too."))
	}
	if q.BootKernel != "" && q.DiskImage {
		diags = append(diags, errAt("boot_kernel", "boot_kernel needs an ISO source",
			"boot_kernel and boot_initrd are paths inside the ISO given by iso_url; remove them or disk_image."))
	}
	for i, step := range q.BootSteps {
		if len(step) == 0 || len(step) > 2 {
			diags = append(diags, errAt("boot_steps", "Invalid boot_steps entry",
				fmt.Sprintf("boot_steps[%d] has %d elements: each entry is [\"keys\"] or [\"keys\", \"description\"].", i, len(step))))
		}
	}
	return diags
}

func (q *QEMU) prepareCommunicator() hcl.Diagnostics {
	var diags hcl.Diagnostics
	if q.Communicator == "" {
		q.Communicator = "ssh"
	}
	switch q.Communicator {
	case "ssh", "none":
	case "winrm":
		diags = append(diags, errAt("communicator", "communicator winrm is not supported by kiln",
			"kiln provisions over SSH only. Use communicator = \"ssh\" (OpenSSH on Windows works), or \"none\"."))
	default:
		diags = append(diags, errAt("communicator", "Invalid communicator",
			fmt.Sprintf("communicator is %q: use \"ssh\" or \"none\".", q.Communicator)))
	}
	if q.SSHPort == 0 {
		q.SSHPort = 22
	}
	if q.SSHWaitTimeout != "" {
		q.SSHTimeout = q.SSHWaitTimeout // Packer: the old name wins when set
	}
	var more hcl.Diagnostics
	attr := "ssh_timeout"
	if q.SSHWaitTimeout != "" {
		attr = "ssh_wait_timeout"
	}
	q.SSHTimeoutDur, more = parseDur(attr, &q.SSHTimeout, "5m")
	diags = append(diags, more...)
	if q.SSHHandshakeAttempts == 0 {
		q.SSHHandshakeAttempts = 10
	}
	q.SSHKeepAliveDur, more = parseDur("ssh_keep_alive_interval", &q.SSHKeepAlive, "5s")
	diags = append(diags, more...)
	if q.TempKeyPairType == "" {
		q.TempKeyPairType = "ed25519"
	}
	if !slices.Contains(keyPairTypes, q.TempKeyPairType) {
		diags = append(diags, errAt("temporary_key_pair_type", "Invalid temporary_key_pair_type",
			fmt.Sprintf("temporary_key_pair_type is %q: use one of %s (kiln does not generate dsa keys).",
				q.TempKeyPairType, strings.Join(keyPairTypes, ", "))))
	}
	if q.Communicator != "ssh" {
		return diags
	}
	if q.SSHUsername == "" {
		diags = append(diags, errAt("ssh_username", "Missing ssh_username",
			`Set ssh_username to the account the installer creates (e.g. "root" or "packer"), or set communicator = "none" to skip provisioning.`))
	}
	if q.SSHPrivateKeyFile != "" {
		// Relative to the working directory, as in Packer.
		if _, err := os.Stat(q.SSHPrivateKeyFile); err != nil {
			diags = append(diags, errAt("ssh_private_key_file", "ssh_private_key_file is not readable",
				fmt.Sprintf("%v. Relative paths are resolved against the working directory; fix the path or remove the option to use a temporary key.", err)))
		}
	}
	return diags
}

func defInt(p *int, def int) {
	if *p == 0 {
		*p = def
	}
}

func defaultEnum(attr string, p *string, def string, allowed []string) hcl.Diagnostics {
	if *p == "" {
		*p = def
	}
	if slices.Contains(allowed, *p) {
		return nil
	}
	return hcl.Diagnostics{errAt(attr, "Invalid "+attr,
		fmt.Sprintf("%s is %q: use one of %s.", attr, *p, strings.Join(allowed, ", ")))}
}

// parseDur defaults *p to def and parses it as a Go duration, the
// syntax Packer uses for all its durations.
func parseDur(attr string, p *string, def string) (time.Duration, hcl.Diagnostics) {
	if *p == "" {
		*p = def
	}
	d, err := time.ParseDuration(*p)
	if err != nil {
		return 0, hcl.Diagnostics{errAt(attr, "Invalid "+attr,
			fmt.Sprintf("%q is not a duration: use a number with a unit, e.g. \"90s\", \"5m\" or \"1h30m\".", *p))}
	}
	return d, nil
}

var sizeRe = regexp.MustCompile(`^([0-9]+)([bkmgt]?)$`)

// parseSize reads Packer's disk size syntax: digits with an optional unit
// b, k, m, g or t (any case, powers of 1024); a bare number is MiB.
func parseSize(s string) (bytes int64, bare bool, err error) {
	m := sizeRe.FindStringSubmatch(strings.ToLower(s))
	if m == nil {
		return 0, false, fmt.Errorf("%q is not a size: use digits with an optional unit b, k, m, g or t, e.g. \"20G\"; a bare number means MiB", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("%q is too large", s)
	}
	shift := map[string]uint{"b": 0, "k": 10, "": 20, "m": 20, "g": 30, "t": 40}[m[2]]
	if n > math.MaxInt64>>shift {
		return 0, false, fmt.Errorf("%q is too large", s)
	}
	return n << shift, m[2] == "", nil
}
