package qemu

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kilnbuild/kiln/hypervisor/qmp"
	"github.com/kilnbuild/kiln/internal/testutil"
)

// argsCase is one golden test. spec takes the directory the files live in:
// "DIR" for the golden output, a real temp dir when QEMU itself checks
// the command line.
type argsCase struct {
	name string
	spec func(dir string) Spec
	// files are created (empty, or qcow2 for .qcow2) before QEMU runs.
	files []string
	// noQEMU: golden only (needs something this machine may lack).
	noQEMU bool
}

// base is a typical kiln build VM: paused, QMP, serial socket + log, user
// network, no window.
func base(dir string) Spec {
	return Spec{
		Binary:       "qemu-system-x86_64",
		Name:         "kiln-test",
		Machine:      "pc",
		Accel:        "tcg",
		MemoryMB:     512,
		QMPSocket:    dir + "/qmp.sock",
		SerialSocket: dir + "/serial.sock",
		NetDevice:    "virtio-net",
		Paused:       true,
	}
}

func disk(dir, iface string) Drive {
	return Drive{Path: dir + "/disk.qcow2", Format: "qcow2", Interface: iface, Cache: "writeback", Discard: "ignore"}
}

func ptr(n int) *int { return &n }

func cdrom(path string) Drive { return Drive{Path: path, Media: "cdrom"} }

var argsCases = []argsCase{
	{
		name: "defaults_qcow2_virtio",
		spec: func(dir string) Spec {
			s := base(dir)
			s.Drives = []Drive{disk(dir, "virtio"), cdrom(dir + "/install.iso")}
			s.Boot = "once=d"
			s.VNC = "127.0.0.1:5,to=100"
			return s
		},
		files: []string{"disk.qcow2", "install.iso"},
	},
	{
		name: "ide_cdrom_boot_once_d",
		spec: func(dir string) Spec {
			s := base(dir)
			s.Drives = []Drive{disk(dir, "ide"), cdrom(dir + "/install.iso"), cdrom(dir + "/cidata.iso")}
			s.CDROMInterface = "ide"
			s.Boot = "once=d"
			return s
		},
		files: []string{"disk.qcow2", "install.iso", "cidata.iso"},
	},
	{
		name: "virtio_scsi",
		spec: func(dir string) Spec {
			s := base(dir)
			d := disk(dir, "virtio-scsi")
			d.Discard, d.DetectZeroes = "unmap", "unmap"
			s.Drives = []Drive{d, cdrom(dir + "/install.iso")}
			s.CDROMInterface = "virtio-scsi"
			s.Boot = "once=d"
			return s
		},
		files: []string{"disk.qcow2", "install.iso"},
	},
	{
		name: "sata",
		spec: func(dir string) Spec {
			s := base(dir)
			s.Drives = []Drive{disk(dir, "sata"), cdrom(dir + "/install.iso")}
			s.CDROMInterface = "sata"
			return s
		},
		files: []string{"disk.qcow2", "install.iso"},
	},
	{
		name: "efi_pflash",
		spec: func(dir string) Spec {
			s := base(dir)
			s.Machine = "q35"
			s.Drives = []Drive{disk(dir, "virtio"), {Path: dir + "/seed.img", Format: "raw", Interface: "virtio", ReadOnly: true}}
			s.EFICode = dir + "/OVMF_CODE.fd"
			s.EFIVars = dir + "/efivars.fd"
			return s
		},
		files: []string{"disk.qcow2", "seed.img", "OVMF_CODE.fd", "efivars.fd"},
	},
	{
		// UEFI installing from an ISO: OVMF ignores -boot, so the disk
		// goes first by bootindex (skipped while empty) and the CD second.
		name: "efi_iso_bootindex",
		spec: func(dir string) Spec {
			s := base(dir)
			s.Machine = "q35"
			d, cd := disk(dir, "virtio"), cdrom(dir+"/install.iso")
			d.BootIndex, cd.BootIndex = ptr(0), ptr(1)
			s.Drives = []Drive{d, cd, cdrom(dir + "/cidata.iso")}
			s.EFICode = dir + "/OVMF_CODE.fd"
			s.EFIVars = dir + "/efivars.fd"
			return s
		},
		files: []string{"disk.qcow2", "install.iso", "cidata.iso", "OVMF_CODE.fd", "efivars.fd"},
	},
	{
		name: "sata_bootindex",
		spec: func(dir string) Spec {
			s := base(dir)
			s.Machine = "q35"
			d, cd := disk(dir, "sata"), cdrom(dir+"/install.iso")
			cd.Interface = "sata"
			d.BootIndex, cd.BootIndex = ptr(0), ptr(1)
			s.Drives = []Drive{d, cd}
			return s
		},
		files: []string{"disk.qcow2", "install.iso"},
	},
	{
		// kiln's boot_kernel: the kernel and initrd taken out of the ISO.
		name: "direct_kernel_boot",
		spec: func(dir string) Spec {
			s := base(dir)
			s.Drives = []Drive{disk(dir, "virtio")}
			s.Kernel = dir + "/vmlinuz"
			s.Initrd = dir + "/initrd.gz"
			s.Append = "console=ttyS0 kiln.ks=http://10.0.2.2:8080/ks.sh"
			return s
		},
		files:  []string{"disk.qcow2", "vmlinuz", "initrd.gz"},
		noQEMU: true,
	},
	{
		name: "cpu_model_smp",
		spec: func(dir string) Spec {
			s := base(dir)
			s.CPUs, s.Sockets, s.Cores = 4, 1, 4
			s.CPUModel = "max"
			s.MemoryMB = 1024
			s.VGA = "std"
			s.Firmware = "bios-256k.bin"
			s.Boot = "c"
			s.Drives = []Drive{disk(dir, "virtio")}
			return s
		},
		files: []string{"disk.qcow2"},
	},
	{
		// Any -device drops kiln's devices (the SCSI controller and disk
		// device here); the NIC is re-added because no device uses user.0.
		name: "qemuargs_replace_device",
		spec: func(dir string) Spec {
			s := base(dir)
			s.Drives = []Drive{disk(dir, "virtio-scsi")}
			s.ExtraArgs = [][]string{
				{"-device", "virtio-scsi-pci,id=myscsi"},
				{"-device", "scsi-hd,bus=myscsi.0,drive=drive0"},
			}
			return s
		},
		files: []string{"disk.qcow2"},
	},
	{
		// The user's -device list has its own NIC on user.0: not re-added.
		name: "qemuargs_device_with_nic",
		spec: func(dir string) Spec {
			s := base(dir)
			s.Drives = []Drive{disk(dir, "virtio")}
			s.ExtraArgs = [][]string{
				{"-device", "e1000,netdev=user.0"},
				{"-device", "virtio-rng-pci"},
			}
			return s
		},
		files: []string{"disk.qcow2"},
	},
	{
		// Flags, value parts concatenated, an extra chardev next to
		// kiln's, a replaced -m, a replaced -netdev with its own id (no
		// NIC re-added, since user.0 is gone).
		name: "qemuargs_flags_and_replacements",
		spec: func(dir string) Spec {
			s := base(dir)
			s.Drives = []Drive{disk(dir, "virtio")}
			s.ExtraArgs = [][]string{
				{"-no-reboot"},
				{"-smbios", "type=1,serial=", "ds=nocloud;s=http://10.0.2.2:8080/"},
				{"-m", "768M"},
				{"-chardev", "null,id=extra0"},
				{"-netdev", "user,id=n1"},
				{"-device", "virtio-net-pci,netdev=n1"},
				{"-S"}, // already there: not duplicated
			}
			return s
		},
		files: []string{"disk.qcow2"},
	},
	{name: "err_replace_qmp", spec: func(dir string) Spec {
		s := base(dir)
		s.ExtraArgs = [][]string{{"-qmp", "tcp:127.0.0.1:4444,server,nowait"}}
		return s
	}},
	{name: "err_replace_serial", spec: func(dir string) Spec {
		s := base(dir)
		s.ExtraArgs = [][]string{{"-serial", "file:serial.txt"}}
		return s
	}},
	{name: "err_chardev_serial0", spec: func(dir string) Spec {
		s := base(dir)
		s.ExtraArgs = [][]string{{"-chardev", "file,id=serial0,path=/tmp/x"}}
		return s
	}},
	{name: "err_no_switch", spec: func(dir string) Spec {
		s := base(dir)
		s.ExtraArgs = [][]string{{"device", "virtio-rng-pci"}}
		return s
	}},
	{name: "err_unknown_interface", spec: func(dir string) Spec {
		s := base(dir)
		s.Drives = []Drive{disk(dir, "floppy")}
		return s
	}},
	{name: "err_efivars_without_code", spec: func(dir string) Spec {
		s := base(dir)
		s.EFIVars = dir + "/efivars.fd"
		return s
	}},
	{name: "err_no_binary", spec: func(dir string) Spec {
		s := base(dir)
		s.Binary = ""
		return s
	}},
}

func TestArgsGolden(t *testing.T) {
	for _, tc := range argsCases {
		t.Run(tc.name, func(t *testing.T) {
			var got string
			argv, err := Args(tc.spec("DIR"))
			switch {
			case strings.HasPrefix(tc.name, "err_"):
				if err == nil {
					t.Fatalf("Args succeeded, want an error; argv:\n%s", strings.Join(argv, "\n"))
				}
				got = "error: " + err.Error() + "\n"
			case err != nil:
				t.Fatalf("Args: %v", err)
			default:
				got = strings.Join(argv, "\n") + "\n"
			}
			testutil.Golden(t, filepath.Join("testdata", tc.name+".golden"), []byte(got))
		})
	}
}

func TestArgsDeterministic(t *testing.T) {
	var s Spec
	for _, tc := range argsCases {
		if tc.name == "qemuargs_flags_and_replacements" {
			s = tc.spec("DIR")
		}
	}
	first, err := Args(s)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		again, _ := Args(s)
		if strings.Join(again, " ") != strings.Join(first, " ") {
			t.Fatalf("Args not deterministic:\n%v\n%v", first, again)
		}
	}
}

// TestArgsAcceptedByQEMU runs every golden command line (with real files)
// through QEMU paused, so a well-formed golden that QEMU rejects is caught.
func TestArgsAcceptedByQEMU(t *testing.T) {
	bin := testutil.Tool(t, "qemu-system-x86_64")
	for _, tc := range argsCases {
		if strings.HasPrefix(tc.name, "err_") || tc.noQEMU {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			dir := shortTempDir(t)
			for _, f := range tc.files {
				makeFile(t, filepath.Join(dir, f))
			}
			s := tc.spec(dir)
			s.Binary = bin
			argv, err := Args(s)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			p, err := Start(ctx, argv, StartOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Kill()
			c, err := qmp.Dial(ctx, s.QMPSocket, qmp.Options{})
			if err != nil {
				p.Kill()
				<-p.Done()
				t.Fatalf("QEMU rejected the command line: %v\nargv: %q", p.ExitError(), argv)
			}
			defer c.Close()
			var blocks []struct{ Device, QDev string }
			if err := c.Execute(ctx, "query-block", nil, &blocks); err != nil {
				t.Fatal(err)
			}
			t.Logf("%d block devices", len(blocks))
			c.Execute(ctx, "quit", nil, nil)
			if err := p.Wait(ctx); err != nil {
				t.Fatalf("qemu: %v", err)
			}
		})
	}
}

// makeFile creates a fixture: a small qcow2 for .qcow2, firmware copies
// for the OVMF names, otherwise a 1 MiB empty file.
func makeFile(t *testing.T, path string) {
	t.Helper()
	switch {
	case strings.HasSuffix(path, ".qcow2"):
		out, err := exec.Command("qemu-img", "create", "-f", "qcow2", path, "16M").CombinedOutput()
		if err != nil {
			t.Fatalf("qemu-img: %v: %s", err, out)
		}
	case strings.HasSuffix(path, "OVMF_CODE.fd"), strings.HasSuffix(path, "efivars.fd"):
		src := "/usr/share/OVMF/OVMF_CODE_4M.fd"
		if strings.HasSuffix(path, "efivars.fd") {
			src = "/usr/share/OVMF/OVMF_VARS_4M.fd"
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Skipf("OVMF not installed: %v", err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	default:
		if err := os.WriteFile(path, make([]byte, 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
