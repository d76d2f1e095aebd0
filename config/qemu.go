package config

import "time"

// QEMU is the body of a `source "qemu" "NAME"` block. Field names and
// defaults follow Packer's QEMU builder (packer-plugin-qemu's Config) so
// existing templates decode unchanged. Raw fields carry `hcl` tags and are
// what the template says; the untagged fields below them are filled by
// (*QEMU).prepare with defaults applied and values parsed, and are what the
// rest of kiln reads.
type QEMU struct {
	// ISO / source image.
	ISOURL         string            `hcl:"iso_url,optional"`
	ISOURLs        []string          `hcl:"iso_urls,optional"`
	ISOChecksum    string            `hcl:"iso_checksum,optional"`
	ISOTargetPath  string            `hcl:"iso_target_path,optional"`
	ISOTargetExt   string            `hcl:"iso_target_extension,optional"`
	DiskImage      bool              `hcl:"disk_image,optional"`
	UseBackingFile bool              `hcl:"use_backing_file,optional"`
	CDROMInterface string            `hcl:"cdrom_interface,optional"`
	CDFiles        []string          `hcl:"cd_files,optional"`
	CDContent      map[string]string `hcl:"cd_content,optional"`
	CDLabel        string            `hcl:"cd_label,optional"`

	// Disk.
	DiskSize           string   `hcl:"disk_size,optional"`
	Format             string   `hcl:"format,optional"`
	DiskInterface      string   `hcl:"disk_interface,optional"`
	DiskCache          string   `hcl:"disk_cache,optional"`
	DiskDiscard        string   `hcl:"disk_discard,optional"`
	DiskDetectZeroes   string   `hcl:"disk_detect_zeroes,optional"`
	SkipCompaction     bool     `hcl:"skip_compaction,optional"`
	DiskCompression    bool     `hcl:"disk_compression,optional"`
	SkipResizeDisk     bool     `hcl:"skip_resize_disk,optional"`
	DiskAdditionalSize []string `hcl:"disk_additional_size,optional"`

	// Machine.
	Accelerator string     `hcl:"accelerator,optional"`
	MachineType string     `hcl:"machine_type,optional"`
	CPUs        int        `hcl:"cpus,optional"`
	Memory      int        `hcl:"memory,optional"`
	CPUModel    string     `hcl:"cpu_model,optional"`
	QEMUBinary  string     `hcl:"qemu_binary,optional"`
	QEMUArgs    [][]string `hcl:"qemuargs,optional"`
	Firmware    string     `hcl:"firmware,optional"`
	EFIBoot     bool       `hcl:"efi_boot,optional"`
	EFICode     string     `hcl:"efi_firmware_code,optional"`
	EFIVars     string     `hcl:"efi_firmware_vars,optional"`
	VGA         string     `hcl:"vga,optional"`
	Headless    bool       `hcl:"headless,optional"`
	Display     string     `hcl:"display,optional"`

	// Network.
	NetDevice   string `hcl:"net_device,optional"`
	HostPortMin int    `hcl:"host_port_min,optional"`
	HostPortMax int    `hcl:"host_port_max,optional"`

	// VNC (only used when a boot command is typed over VNC).
	VNCBindAddress string `hcl:"vnc_bind_address,optional"`
	VNCPortMin     int    `hcl:"vnc_port_min,optional"`
	VNCPortMax     int    `hcl:"vnc_port_max,optional"`
	VNCUsePassword bool   `hcl:"vnc_use_password,optional"`
	VNCPassword    string `hcl:"vnc_password,optional"`
	DisableVNC     bool   `hcl:"disable_vnc,optional"`

	// Boot.
	BootCommand     []string   `hcl:"boot_command,optional"`
	BootSteps       [][]string `hcl:"boot_steps,optional"`
	BootWait        string     `hcl:"boot_wait,optional"`
	BootKeyInterval string     `hcl:"boot_key_interval,optional"`

	// HTTP server for answer files.
	HTTPDirectory   string            `hcl:"http_directory,optional"`
	HTTPContent     map[string]string `hcl:"http_content,optional"`
	HTTPPortMin     int               `hcl:"http_port_min,optional"`
	HTTPPortMax     int               `hcl:"http_port_max,optional"`
	HTTPBindAddress string            `hcl:"http_bind_address,optional"`

	// Communicator.
	Communicator         string `hcl:"communicator,optional"`
	SSHUsername          string `hcl:"ssh_username,optional"`
	SSHPassword          string `hcl:"ssh_password,optional"`
	SSHPrivateKeyFile    string `hcl:"ssh_private_key_file,optional"`
	SSHPort              int    `hcl:"ssh_port,optional"`
	SSHHost              string `hcl:"ssh_host,optional"`
	SSHTimeout           string `hcl:"ssh_timeout,optional"`
	SSHWaitTimeout       string `hcl:"ssh_wait_timeout,optional"` // Packer's alias of ssh_timeout
	SSHHandshakeAttempts int    `hcl:"ssh_handshake_attempts,optional"`
	SSHKeepAlive         string `hcl:"ssh_keep_alive_interval,optional"`
	TempKeyPairType      string `hcl:"temporary_key_pair_type,optional"`

	// Shutdown and output.
	ShutdownCommand string `hcl:"shutdown_command,optional"`
	ShutdownTimeout string `hcl:"shutdown_timeout,optional"`
	OutputDirectory string `hcl:"output_directory,optional"`
	VMName          string `hcl:"vm_name,optional"`

	// kiln extensions (not in Packer); see README "kiln extensions".
	// BootCommandTransport: how keys are typed, "qmp" (default:
	// input-send-event, no VNC needed) or "vnc" (RFB key events, as Packer).
	BootCommandTransport string `hcl:"boot_command_transport,optional"`
	// BootWaitSerial replaces the blind boot_wait: type the boot command as
	// soon as this text appears on the serial console.
	BootWaitSerial        string `hcl:"boot_wait_serial,optional"`
	BootWaitSerialTimeout string `hcl:"boot_wait_serial_timeout,optional"`
	// HTTPWaitFetched names http_directory/http_content paths the guest must
	// fetch after the boot command; the build fails (with a screenshot) if
	// it has not within HTTPWaitFetchedTimeout.
	HTTPWaitFetched        []string `hcl:"http_wait_fetched,optional"`
	HTTPWaitFetchedTimeout string   `hcl:"http_wait_fetched_timeout,optional"`
	// BootKernel/BootInitrd are paths inside the ISO: kiln extracts them and
	// boots them directly with BootKernelArgs (a template like the boot
	// command's), so no boot command has to be typed.
	BootKernel     string `hcl:"boot_kernel,optional"`
	BootInitrd     string `hcl:"boot_initrd,optional"`
	BootKernelArgs string `hcl:"boot_kernel_args,optional"`
	// Output format options (see config/output.go): format may also be
	// vmdk, vhd, vhdx or ova; the VM then runs on a qcow2 working disk
	// that is exported at the end.
	VMDKSubformat    string `hcl:"vmdk_subformat,optional"`
	VMDKAdapterType  string `hcl:"vmdk_adapter_type,optional"`
	VMDKHWVersion    string `hcl:"vmdk_hwversion,optional"`
	VHDSubformat     string `hcl:"vhd_subformat,optional"`
	QCOW2Compression string `hcl:"qcow2_compression,optional"`
	// TrimBeforeShutdown runs fstrim in the guest before the shutdown
	// step, so freed blocks are dropped from the image.
	TrimBeforeShutdown bool `hcl:"trim_before_shutdown,optional"`

	// Parsed and defaulted values, filled by prepare. Nothing below is
	// decoded from the template directly.
	DiskSizeBytes        int64
	AdditionalSizesBytes []int64
	SSHTimeoutDur        time.Duration
	SSHKeepAliveDur      time.Duration
	ShutdownTimeoutDur   time.Duration
	BootWaitDur          time.Duration
	BootKeyIntervalDur   time.Duration
	BootWaitSerialDur    time.Duration
	HTTPWaitFetchedDur   time.Duration
	// WorkFormat is the format of the disk the VM runs on: format when it
	// is qcow2 or raw, else qcow2.
	WorkFormat string
}
