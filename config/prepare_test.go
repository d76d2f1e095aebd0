package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDefaults(t *testing.T) {
	tmpl := mustLoad(t, `source "qemu" "deb" {`+minimalSource+`}
build { sources = ["source.qemu.deb"] }`, LoadOptions{})
	got := onlyBuild(t, tmpl).Source
	want := &QEMU{
		ISOURL:                 "https://example.org/debian.iso",
		ISOChecksum:            "sha256:0000000000000000000000000000000000000000000000000000000000000000",
		ISOTargetExt:           "iso",
		CDLabel:                "packer",
		DiskSize:               "40960M",
		Format:                 "qcow2",
		WorkFormat:             "qcow2",
		DiskInterface:          "virtio",
		DiskCache:              "writeback",
		DiskDiscard:            "ignore",
		DiskDetectZeroes:       "off",
		Accelerator:            "", // decided at build time
		MachineType:            "pc",
		CPUs:                   1,
		Memory:                 512,
		QEMUBinary:             "qemu-system-x86_64",
		NetDevice:              "virtio-net",
		HostPortMin:            2222,
		HostPortMax:            4444,
		VNCBindAddress:         "127.0.0.1",
		VNCPortMin:             5900,
		VNCPortMax:             6000,
		BootWait:               "10s",
		BootKeyInterval:        "100ms",
		BootCommandTransport:   "qmp",
		BootWaitSerialTimeout:  "5m",
		HTTPWaitFetchedTimeout: "5m",
		HTTPPortMin:            8000,
		HTTPPortMax:            9000,
		HTTPBindAddress:        "127.0.0.1", // kiln: Packer binds 0.0.0.0
		Communicator:           "ssh",
		SSHUsername:            "root",
		SSHPort:                22,
		SSHTimeout:             "5m",
		SSHHandshakeAttempts:   10,
		SSHKeepAlive:           "5s",
		TempKeyPairType:        "ed25519", // kiln: Packer uses rsa
		ShutdownTimeout:        "5m",
		OutputDirectory:        "output-deb",
		VMName:                 "packer-deb",
		DiskSizeBytes:          40960 << 20,
		SSHTimeoutDur:          5 * time.Minute,
		SSHKeepAliveDur:        5 * time.Second,
		ShutdownTimeoutDur:     5 * time.Minute,
		BootWaitDur:            10 * time.Second,
		BootKeyIntervalDur:     100 * time.Millisecond,
		BootWaitSerialDur:      5 * time.Minute,
		HTTPWaitFetchedDur:     5 * time.Minute,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

func TestPrepareAdjustments(t *testing.T) {
	tests := []struct {
		name  string
		in    QEMU
		check func(t *testing.T, q *QEMU)
	}{
		{"bare disk size is MiB", QEMU{DiskSize: "2048"}, func(t *testing.T, q *QEMU) {
			if q.DiskSize != "2048M" || q.DiskSizeBytes != 2048<<20 {
				t.Errorf("%q %d", q.DiskSize, q.DiskSizeBytes)
			}
		}},
		{"units any case", QEMU{DiskSize: "1T", DiskAdditionalSize: []string{"512k", "3g", "100b", "7"}}, func(t *testing.T, q *QEMU) {
			want := []int64{512 << 10, 3 << 30, 100, 7 << 20}
			if q.DiskSizeBytes != 1<<40 || !cmp.Equal(q.AdditionalSizesBytes, want) {
				t.Errorf("%d %v", q.DiskSizeBytes, q.AdditionalSizesBytes)
			}
		}},
		{"raw forces skip_compaction, no compression", QEMU{Format: "raw", DiskCompression: true}, func(t *testing.T, q *QEMU) {
			if !q.SkipCompaction || q.DiskCompression {
				t.Errorf("skip %v compression %v", q.SkipCompaction, q.DiskCompression)
			}
		}},
		{"backing file forces skip_compaction", QEMU{DiskImage: true, UseBackingFile: true}, func(t *testing.T, q *QEMU) {
			if !q.SkipCompaction {
				t.Error("skip_compaction not forced")
			}
		}},
		{"small memory becomes 512, cpus at least 1", QEMU{Memory: 8, CPUs: -2}, func(t *testing.T, q *QEMU) {
			if q.Memory != 512 || q.CPUs != 1 {
				t.Errorf("memory %d cpus %d", q.Memory, q.CPUs)
			}
		}},
		{"negative boot_wait means none", QEMU{BootWait: "-1s"}, func(t *testing.T, q *QEMU) {
			if q.BootWaitDur != 0 {
				t.Errorf("boot wait %v", q.BootWaitDur)
			}
		}},
		{"ssh_wait_timeout alias", QEMU{SSHWaitTimeout: "20m"}, func(t *testing.T, q *QEMU) {
			if q.SSHTimeoutDur != 20*time.Minute || q.SSHTimeout != "20m" {
				t.Errorf("%v %q", q.SSHTimeoutDur, q.SSHTimeout)
			}
		}},
		{"efi firmware turns efi on", QEMU{EFICode: "/x/OVMF_CODE.fd"}, func(t *testing.T, q *QEMU) {
			if !q.EFIBoot {
				t.Error("efi_boot not set")
			}
		}},
		{"communicator none needs no username", QEMU{Communicator: "none"}, func(t *testing.T, q *QEMU) {}},
		{"export formats run on qcow2", QEMU{Format: "ova", CPUs: 2, Memory: 1024, VMDKHWVersion: "17"}, func(t *testing.T, q *QEMU) {
			f := q.ExportFormat()
			if q.WorkFormat != "qcow2" || !q.Exported() || f.Name != "ova" || f.VMDKHWVersion != "17" ||
				f.OVA.CPUs != 2 || f.OVA.MemoryMB != 1024 {
				t.Errorf("work %q exported %v format %+v", q.WorkFormat, q.Exported(), f)
			}
		}},
		{"raw runs on raw", QEMU{Format: "raw"}, func(t *testing.T, q *QEMU) {
			if q.WorkFormat != "raw" || q.Exported() {
				t.Errorf("work %q exported %v", q.WorkFormat, q.Exported())
			}
		}},
		{"qcow2_compression implies compression", QEMU{QCOW2Compression: "zstd"}, func(t *testing.T, q *QEMU) {
			if f := q.ExportFormat(); !q.DiskCompression || f.Compression != "zstd" {
				t.Errorf("compression %v format %+v", q.DiskCompression, f)
			}
		}},
		{"disk_compression is zlib", QEMU{DiskCompression: true}, func(t *testing.T, q *QEMU) {
			if f := q.ExportFormat(); f.Compression != "zlib" {
				t.Errorf("format %+v", f)
			}
		}},
		{"trim turns on discard", QEMU{TrimBeforeShutdown: true}, func(t *testing.T, q *QEMU) {
			if q.DiskDiscard != "unmap" {
				t.Errorf("disk_discard %q", q.DiskDiscard)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.in
			q.ISOURL, q.ISOChecksum = "x.iso", "none"
			if q.Communicator == "" {
				q.SSHUsername = "u"
			}
			diags := q.prepare("b")
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			tc.check(t, &q)
		})
	}
}

func TestPrepareErrors(t *testing.T) {
	key := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(key, []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		extra   string // goes on line 2 of the source block
		drop    string // removed from the minimal source
		summary string
		line    int // 1 = the source block itself
	}{
		{"both urls", `iso_urls = ["a"]`, "", "Both iso_url and iso_urls are set", 2},
		{"no url", ``, "iso_url", "Missing iso_url", 1},
		{"no checksum", ``, "iso_checksum", "Missing iso_checksum", 1},
		{"bad checksum hex", `iso_checksum = "sha256:xyz"`, "iso_checksum", "Invalid iso_checksum", 2},
		{"bad checksum length", `iso_checksum = "sha256:abcd"`, "iso_checksum", "Invalid iso_checksum", 2},
		{"bad checksum type", `iso_checksum = "crc32:abcd"`, "iso_checksum", "Invalid iso_checksum", 2},
		{"disk size", `disk_size = "40X"`, "", "Invalid disk_size", 2},
		{"additional size", `disk_additional_size = ["1G", "lots"]`, "", "Invalid disk_additional_size", 2},
		{"format", `format = "vdi"`, "", "Invalid format", 2},
		{"vmdk option on vhd", "format = \"vhd\"\n  vmdk_subformat = \"monolithicSparse\"", "", "Invalid output format options", 3},
		{"bad vhd subformat", "format = \"vhd\"\n  vhd_subformat = \"huge\"", "", "Invalid output format options", 3},
		{"compression on vmdk", "format = \"vmdk\"\n  qcow2_compression = \"zstd\"", "", "Invalid output format options", 3},
		{"disk interface", `disk_interface = "nvme"`, "", "Invalid disk_interface", 2},
		{"disk cache", `disk_cache = "fast"`, "", "Invalid disk_cache", 2},
		{"disk discard", `disk_discard = "trim"`, "", "Invalid disk_discard", 2},
		{"detect zeroes", `disk_detect_zeroes = "maybe"`, "", "Invalid disk_detect_zeroes", 2},
		{"backing file without disk image", `use_backing_file = true`, "", "use_backing_file needs disk_image", 2},
		{"backing file with raw", "use_backing_file = true\n  disk_image = true\n  format = \"raw\"", "", "use_backing_file needs disk_image", 2},
		{"skip resize without disk image", `skip_resize_disk = true`, "", "skip_resize_disk needs disk_image", 2},
		{"accelerator", `accelerator = "fast"`, "", "Invalid accelerator", 2},
		{"winrm", `communicator = "winrm"`, "", "communicator winrm is not supported by kiln", 2},
		{"communicator", `communicator = "telnet"`, "", "Invalid communicator", 2},
		{"ssh username", ``, "ssh_username", "Missing ssh_username", 1},
		{"private key", `ssh_private_key_file = "/nonexistent/key"`, "", "ssh_private_key_file is not readable", 2},
		{"host ports", "host_port_min = 5000\n  host_port_max = 4000", "", "host_port_min is above host_port_max", 2},
		{"vnc ports floor", `vnc_port_min = 5000`, "", "Invalid vnc_port_min", 2},
		{"vnc ports max", `vnc_port_max = 70000`, "", "Invalid vnc_port range", 2},
		{"http ports", "http_port_min = 9500", "", "http_port_min is above http_port_max", 2},
		{"ssh timeout", `ssh_timeout = "5 minutes"`, "", "Invalid ssh_timeout", 2},
		{"ssh wait timeout", `ssh_wait_timeout = "x"`, "", "Invalid ssh_wait_timeout", 2},
		{"boot wait", `boot_wait = "10"`, "", "Invalid boot_wait", 2},
		{"shutdown timeout", `shutdown_timeout = "soon"`, "", "Invalid shutdown_timeout", 2},
		{"keep alive", `ssh_keep_alive_interval = "x"`, "", "Invalid ssh_keep_alive_interval", 2},
		{"key interval", `boot_key_interval = "x"`, "", "Invalid boot_key_interval", 2},
		{"http dir and content", "http_content = { \"/a\" = \"b\" }\n  http_directory = \"http\"", "", "http_directory and http_content are both set", 2},
		{"boot command and steps", "boot_steps = [[\"a\", \"b\"]]\n  boot_command = [\"x\"]", "", "boot_command and boot_steps are both set", 2},
		{"boot steps shape", `boot_steps = [["a", "b", "c"]]`, "", "Invalid boot_steps entry", 2},
		{"vnc disabled", "disable_vnc = true\n  boot_command_transport = \"vnc\"\n  boot_command = [\"x\"]", "", "A boot command cannot be typed over VNC with disable_vnc", 2},
		{"transport", `boot_command_transport = "serial"`, "", "Invalid boot_command_transport", 2},
		{"wait fetched without server", `http_wait_fetched = ["/ks.cfg"]`, "", "http_wait_fetched needs an HTTP server", 2},
		{"empty qemuargs", `qemuargs = [["-m", "1G"], []]`, "", "Empty qemuargs entry", 2},
		{"key pair type", `temporary_key_pair_type = "dsa"`, "", "Invalid temporary_key_pair_type", 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := minimalSource
			if tc.drop != "" {
				var kept []string
				for _, l := range strings.Split(body, "\n") {
					if !strings.HasPrefix(strings.TrimSpace(l), tc.drop+" ") {
						kept = append(kept, l)
					}
				}
				body = strings.Join(kept, "\n")
			}
			src := "source \"qemu\" \"a\" {\n  " + tc.extra + "\n" + body + "}\nbuild { sources = [\"source.qemu.a\"] }\n"
			out, diags := loadErr(t, src, LoadOptions{})
			for _, d := range diags {
				if strings.Contains(d.Summary, tc.summary) {
					if d.Subject == nil || d.Subject.Start.Line != tc.line {
						t.Errorf("%q subject %v, want line %d", d.Summary, d.Subject, tc.line)
					}
					if d.Detail == "" {
						t.Errorf("%q has no detail saying what to do", d.Summary)
					}
					return
				}
			}
			t.Errorf("no %q in:\n%s", tc.summary, out)
		})
	}

	// A readable key file passes.
	mustLoad(t, "source \"qemu\" \"a\" {\n  ssh_private_key_file = \""+key+"\"\n"+minimalSource+"}\nbuild { sources = [\"source.qemu.a\"] }\n", LoadOptions{})
}

func TestChecksumSyntax(t *testing.T) {
	ok := []string{
		"md5:" + strings.Repeat("a", 32),
		"sha1:" + strings.Repeat("b", 40),
		"sha256:" + strings.Repeat("C", 64),
		"sha512:" + strings.Repeat("d", 128),
		strings.Repeat("e", 64), // guessed sha256
		strings.Repeat("f", 32), // guessed md5
		"file:https://cdimage.debian.org/SHA256SUMS",
		"file:./SHA256SUMS",
	}
	for _, s := range ok {
		if err := checkChecksumSyntax(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	bad := map[string]string{
		"sha256:" + strings.Repeat("a", 63): "64 hex digits",
		strings.Repeat("a", 50):             "cannot guess",
		"sha3:" + strings.Repeat("a", 64):   "unknown checksum type",
		"file:":                             "must be followed",
		"sha256:zz":                         "not a checksum",
		"":                                  "not a checksum",
	}
	for s, want := range bad {
		err := checkChecksumSyntax(s)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err %v, want %q", s, err, want)
		}
	}
}

func TestKeyIntervalFromEnv(t *testing.T) {
	src := `source "qemu" "a" {` + minimalSource + `}
build { sources = ["source.qemu.a"] }`
	q := onlyBuild(t, mustLoad(t, src, LoadOptions{Env: []string{"PACKER_KEY_INTERVAL=10ms"}})).Source
	if q.BootKeyIntervalDur != 10*time.Millisecond {
		t.Errorf("key interval %v", q.BootKeyIntervalDur)
	}
}
