// Package firmware finds UEFI firmware for a QEMU machine the way QEMU's
// management tools do: from the firmware descriptors distributions ship
// (docs/interop/firmware.json in QEMU), not from hard-coded paths.
//
// Why: Packer defaults efi_firmware_code to /usr/share/OVMF/OVMF_CODE.fd,
// which newer distributions no longer ship (Ubuntu 24.04 and Debian 13
// have only the 4M builds; Fedora ships some as qcow2). The descriptors
// name the files, their formats, the machines they run on and whether
// they do Secure Boot, and every distribution keeps them up to date.
package firmware

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Firmware is a UEFI firmware pair for pflash: the read-only code and the
// template of the variable store, which each VM must copy.
type Firmware struct {
	Code, Vars             string // absolute paths
	CodeFormat, VarsFormat string // QEMU block formats: "raw", "qcow2"
	// SecureBoot: the firmware implements UEFI Secure Boot.
	SecureBoot bool
	// EnrolledKeys: the Vars template has Secure Boot turned on with keys
	// enrolled, so unsigned boot loaders are refused.
	EnrolledKeys bool
	// RequiresSMM: the machine must emulate SMM ("-machine smm=on"), and
	// with SecureBoot the vars flash should be restricted to SMM
	// ("-global driver=cfi.pflash01,property=secure,value=on").
	RequiresSMM bool
	// Descriptor is the JSON file the firmware was chosen from.
	Descriptor string
}

// DefaultDirs returns QEMU's descriptor directories, most specific first:
// $XDG_CONFIG_HOME/qemu/firmware (default ~/.config/qemu/firmware),
// /etc/qemu/firmware, /usr/share/qemu/firmware.
func DefaultDirs() []string {
	var dirs []string
	if cfg := os.Getenv("XDG_CONFIG_HOME"); cfg != "" {
		dirs = append(dirs, filepath.Join(cfg, "qemu", "firmware"))
	} else if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".config", "qemu", "firmware"))
	}
	return append(dirs, "/etc/qemu/firmware", "/usr/share/qemu/firmware")
}

// Find picks the UEFI firmware for arch (QEMU's target name, "x86_64" or
// "aarch64"; Go's "amd64" and "arm64" are accepted) and machine (a QEMU
// machine type; "" means Packer's default, "pc" on x86). dirs lists the
// descriptor directories, most specific first; nil means DefaultDirs.
//
// QEMU's rules: descriptors from all directories are sorted by file name
// and the first that matches wins; a file in a more specific directory
// replaces the one of the same name in a less specific directory, and an
// empty file there hides it. A descriptor matches when it has the "uefi"
// interface, the "flash" device (with separate code and vars files), a
// target with arch and a machine glob covering machine, and its files
// exist. The aliases "pc", "q35" and "virt" match descriptors whose globs
// cover every versioned machine they stand for ("pc-i440fx-*",
// "pc-q35-*", "virt-*").
//
// With wantSecureBoot, only Secure Boot firmware matches. Without it,
// firmware without Secure Boot is preferred; if there is none for the
// machine, Secure Boot firmware without enrolled keys is used (it boots
// anything, but needs SMM: see RequiresSMM). The error when nothing
// matches lists every descriptor and why it was rejected.
func Find(arch, machine string, wantSecureBoot bool, dirs []string) (Firmware, error) {
	if dirs == nil {
		dirs = DefaultDirs()
	}
	arch = normalizeArch(arch)
	machine, pattern := machinePattern(arch, machine)

	files, searched := descriptorFiles(dirs)
	var (
		rejected []string
		fallback *Firmware
	)
	for _, f := range files {
		fw, why := consider(f, arch, pattern)
		switch {
		case why != "":
		case wantSecureBoot && !fw.SecureBoot:
			why = "no Secure Boot"
		case wantSecureBoot || !fw.SecureBoot:
			return fw, nil
		case fw.EnrolledKeys:
			why = "Secure Boot with enrolled keys (not asked for)"
		default:
			why = "Secure Boot (not asked for; used only if nothing else matches)"
			if fallback == nil {
				fallback = &fw
			}
		}
		rejected = append(rejected, fmt.Sprintf("%s: %s", f.path, why))
	}
	if fallback != nil {
		return *fallback, nil
	}

	sb := "without"
	if wantSecureBoot {
		sb = "with"
	}
	msg := fmt.Sprintf("no UEFI firmware for %s machine %s %s Secure Boot; searched %s",
		arch, machine, sb, strings.Join(searched, ", "))
	if len(files) == 0 {
		return Firmware{}, fmt.Errorf("%s: no firmware descriptors found; install the distribution's OVMF/edk2 package (Debian, Ubuntu: ovmf; Fedora: edk2-ovmf; aarch64: qemu-efi-aarch64) or set efi_firmware_code and efi_firmware_vars", msg)
	}
	hint := ""
	if wantSecureBoot && strings.HasPrefix(pattern, "pc-i440fx-") {
		hint = "\n(Secure Boot with SMM needs a q35 machine: machine_type = \"q35\")"
	}
	return Firmware{}, fmt.Errorf("%s:\n  %s%s", msg, strings.Join(rejected, "\n  "), hint)
}

// descriptorFile is one candidate after QEMU's override rules.
type descriptorFile struct {
	name, path string
	hidden     bool // an empty file in a more specific directory
}

// descriptorFiles lists the *.json files of dirs by name, each name from
// the most specific directory that has it, and describes the search.
func descriptorFiles(dirs []string) ([]descriptorFile, []string) {
	byName := map[string]descriptorFile{}
	var searched []string
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		switch {
		case errors.Is(err, os.ErrNotExist):
			searched = append(searched, dir+" (missing)")
			continue
		case err != nil:
			searched = append(searched, fmt.Sprintf("%s (%v)", dir, err))
			continue
		}
		searched = append(searched, dir)
		for _, e := range entries {
			name := e.Name()
			if !strings.HasSuffix(name, ".json") || e.IsDir() {
				continue
			}
			if _, ok := byName[name]; ok {
				continue // a more specific directory has it
			}
			p := filepath.Join(dir, name)
			st, err := os.Stat(p) // follows links: a link to /dev/null hides too
			byName[name] = descriptorFile{name: name, path: p, hidden: err == nil && (st.Size() == 0 || !st.Mode().IsRegular())}
		}
	}
	files := make([]descriptorFile, 0, len(byName))
	for _, f := range byName {
		files = append(files, f)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	return files, searched
}

// descriptor is the part of QEMU's Firmware schema that Find uses.
type descriptor struct {
	InterfaceTypes []string `json:"interface-types"`
	Mapping        struct {
		Device        string     `json:"device"`
		Mode          string     `json:"mode"`
		Executable    *flashFile `json:"executable"`
		NVRAMTemplate *flashFile `json:"nvram-template"`
	} `json:"mapping"`
	Targets []struct {
		Architecture string   `json:"architecture"`
		Machines     []string `json:"machines"`
	} `json:"targets"`
	Features []string `json:"features"`
}

type flashFile struct {
	Filename string `json:"filename"`
	Format   string `json:"format"`
}

// consider reads one descriptor and returns the firmware it describes, or
// why it cannot run arch/pattern. Secure Boot preferences are the
// caller's.
func consider(f descriptorFile, arch, pattern string) (Firmware, string) {
	if f.hidden {
		return Firmware{}, "empty file: hides the descriptor of that name in less specific directories"
	}
	b, err := os.ReadFile(f.path)
	if err != nil {
		return Firmware{}, err.Error()
	}
	var d descriptor
	if err := json.Unmarshal(b, &d); err != nil {
		return Firmware{}, fmt.Sprintf("invalid descriptor: %v", err)
	}
	if !contains(d.InterfaceTypes, "uefi") {
		return Firmware{}, fmt.Sprintf("interface %v, not uefi", d.InterfaceTypes)
	}
	m := d.Mapping
	if m.Device != "flash" {
		return Firmware{}, fmt.Sprintf("device %q, not flash", m.Device)
	}
	if m.Mode != "" && m.Mode != "split" {
		return Firmware{}, fmt.Sprintf("flash mode %q: kiln needs separate code and vars files (mode split)", m.Mode)
	}
	if m.Executable == nil || m.Executable.Filename == "" || m.NVRAMTemplate == nil || m.NVRAMTemplate.Filename == "" {
		return Firmware{}, "no executable or nvram-template file"
	}
	if why := targetMismatch(d, arch, pattern); why != "" {
		return Firmware{}, why
	}
	for _, ff := range []*flashFile{m.Executable, m.NVRAMTemplate} {
		if _, err := os.Stat(ff.Filename); err != nil {
			return Firmware{}, fmt.Sprintf("firmware file missing: %v", err)
		}
	}
	return Firmware{
		Code:         m.Executable.Filename,
		Vars:         m.NVRAMTemplate.Filename,
		CodeFormat:   orRaw(m.Executable.Format),
		VarsFormat:   orRaw(m.NVRAMTemplate.Format),
		SecureBoot:   contains(d.Features, "secure-boot"),
		EnrolledKeys: contains(d.Features, "enrolled-keys"),
		RequiresSMM:  contains(d.Features, "requires-smm"),
		Descriptor:   f.path,
	}, ""
}

func targetMismatch(d descriptor, arch, pattern string) string {
	var archs, machines []string
	for _, t := range d.Targets {
		if normalizeArch(t.Architecture) != arch {
			archs = append(archs, t.Architecture)
			continue
		}
		for _, g := range t.Machines {
			// The pattern is matched literally: "pc-q35-*" is covered by
			// the glob "pc-q35-*" or "*", not by "pc-q35-8.*".
			if ok, err := path.Match(g, pattern); err == nil && ok {
				return ""
			}
		}
		machines = append(machines, t.Machines...)
	}
	if machines != nil {
		return fmt.Sprintf("machines %v do not cover %s", machines, pattern)
	}
	return fmt.Sprintf("architecture %v, not %s", archs, arch)
}

func normalizeArch(a string) string {
	switch a {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "386":
		return "i386"
	}
	return a
}

// machinePattern resolves Packer's machine_type to what descriptor globs
// are matched against: QEMU's unversioned aliases become the glob of the
// machines they stand for. Options after a comma ("q35,smm=on") are
// dropped. It returns the machine for messages and the pattern.
func machinePattern(arch, machine string) (string, string) {
	machine, _, _ = strings.Cut(strings.TrimSpace(machine), ",")
	if machine == "" {
		machine = "pc" // Packer's default machine_type
		if arch != "x86_64" && arch != "i386" {
			machine = "virt"
		}
	}
	switch machine {
	case "pc":
		return machine, "pc-i440fx-*"
	case "q35":
		return machine, "pc-q35-*"
	case "virt":
		return machine, "virt-*"
	}
	return machine, machine
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func orRaw(format string) string {
	if format == "" {
		return "raw"
	}
	return format
}
