package config

import (
	"strings"
	"testing"
)

func TestLibvirtSource(t *testing.T) {
	tmpl := mustLoad(t, `
source "libvirt" "remote" {`+minimalSource+`
  libvirt_uri  = "qemu+ssh://builder@kvm1.example.org/system"
  domain_type  = "kvm"
  storage_pool = "images"
  network      = "builds"
  http_ip      = "192.0.2.10"
  memory       = 2048
  boot_command = ["<enter>"]
}
source "qemu" "local" {`+minimalSource+`
  accelerator  = "tcg"
  libvirt_uris = ["qemu:///system", "qemu+tcp://10.0.0.2/system"]
  libvirt_host_limit = 3
}
source "qemu" "plain" {`+minimalSource+`}
build {
  sources = ["source.libvirt.remote", "source.qemu.local", "source.qemu.plain"]
}
`, LoadOptions{})
	if len(tmpl.Builds) != 3 {
		t.Fatalf("%d builds, want 3", len(tmpl.Builds))
	}
	r := tmpl.Builds[0]
	if r.SourceType != "libvirt" || r.Libvirt == nil {
		t.Fatalf("libvirt source: type %q, Libvirt %+v", r.SourceType, r.Libvirt)
	}
	if lv := r.Libvirt; lv.URI != "qemu+ssh://builder@kvm1.example.org/system" || lv.DomainType != "kvm" ||
		lv.StoragePool != "images" || lv.Network != "builds" || lv.HTTPIP != "192.0.2.10" || lv.HostLimit != 1 {
		t.Errorf("libvirt options: %+v", lv)
	}
	// The shared options land in the qemu struct, with qemu's defaults,
	// except the HTTP bind address a bridged guest can reach.
	if q := r.Source; q.Memory != 2048 || q.SSHUsername != "root" || q.HTTPBindAddress != "0.0.0.0" || q.OutputDirectory != "output-remote" {
		t.Errorf("shared options: memory %d user %q bind %q out %q", q.Memory, q.SSHUsername, q.HTTPBindAddress, q.OutputDirectory)
	}
	l := tmpl.Builds[1].Libvirt
	if l == nil || len(l.URIs) != 2 || l.HostLimit != 3 || l.URI != "" || l.StoragePool != "default" || l.Network != "default" {
		t.Errorf("qemu source on a libvirt host pool: %+v", l)
	}
	if tmpl.Builds[2].Libvirt != nil || tmpl.Builds[2].Source.HTTPBindAddress != "127.0.0.1" {
		t.Errorf("a plain qemu source must stay local: %+v", tmpl.Builds[2].Libvirt)
	}
}

func TestLibvirtSourceErrors(t *testing.T) {
	for name, tc := range map[string]struct{ body, want string }{
		"bad scheme":     {`libvirt_uri = "xen:///system"`, "must start with qemu://"},
		"bad path":       {`libvirt_uri = "qemu+ssh://h/"`, "/system or /session"},
		"bad type":       {`domain_type = "hvf"`, "want \"kvm\" or \"qemu\""},
		"both uris":      {"libvirt_uri = \"qemu:///system\"\nlibvirt_uris = [\"qemu:///system\"]", "Both libvirt_uri and libvirt_uris"},
		"misspelt":       {`libvirt_url = "qemu:///system"`, "libvirt_url"},
		"bad transport":  {`libvirt_uri = "qemu+tls://h/system"`, "not supported"},
		"negative limit": {`libvirt_host_limit = -1`, "libvirt_host_limit"},
	} {
		t.Run(name, func(t *testing.T) {
			got, _ := loadErr(t, `source "libvirt" "x" {`+minimalSource+tc.body+"\n}\nbuild { sources = [\"source.libvirt.x\"] }\n", LoadOptions{})
			if !strings.Contains(got, tc.want) {
				t.Errorf("diagnostics do not mention %q:\n%s", tc.want, got)
			}
		})
	}
	got, _ := loadErr(t, `source "qemu" "x" {`+minimalSource+`network = "builds"
}
build { sources = ["source.qemu.x"] }
`, LoadOptions{})
	if !strings.Contains(got, "libvirt options without libvirt_uri") {
		t.Errorf("a qemu source with a libvirt option but no URI: %s", got)
	}
}
