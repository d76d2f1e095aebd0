package config

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
)

// Libvirt holds the options of a `source "libvirt"` block that the qemu
// source does not have (kiln's libvirt backend, README "libvirt"). All
// other options of a libvirt source are the qemu source's, with the same
// names and meaning, decoded into Build.Source. The same options on a
// `source "qemu"` block run that source on libvirt instead of a local
// QEMU; libvirt_uri (or libvirt_uris) is what switches it.
type Libvirt struct {
	URI string `hcl:"libvirt_uri,optional"`
	// URIs is a host pool (kiln extension): builds spread over these
	// hosts, at most HostLimit at a time on each.
	URIs      []string `hcl:"libvirt_uris,optional"`
	HostLimit int      `hcl:"libvirt_host_limit,optional"`
	// DomainType is "kvm" or "qemu" (TCG); empty follows accelerator
	// ("tcg" gives qemu), else kvm.
	DomainType string `hcl:"domain_type,optional"`
	// StoragePool receives the disk, ISO and CD volumes ("default").
	// StoragePoolPath creates it as a directory pool there when missing.
	StoragePool     string `hcl:"storage_pool,optional"`
	StoragePoolPath string `hcl:"storage_pool_path,optional"`
	// Network is the libvirt network of the guest's NIC ("default").
	Network string `hcl:"network,optional"`
	// HTTPIP is the address the guest reaches kiln's HTTP server at
	// ({{ .HTTPIP }}). Empty: the host's address on Network, right when
	// kiln runs on the libvirt host; set it for remote hosts.
	HTTPIP string `hcl:"http_ip,optional"`
	// DiskBus is the main disk's bus; empty follows disk_interface.
	DiskBus string `hcl:"disk_bus,optional"`
}

var libvirtSchema, _ = gohcl.ImpliedBodySchema(&Libvirt{})

// splitLibvirt removes the libvirt options from body and decodes them. It
// returns nil (and body unchanged in effect) for a qemu source that sets
// none of them.
func splitLibvirt(body hcl.Body, ctx *hcl.EvalContext, typ string) (*Libvirt, hcl.Body, hcl.Diagnostics) {
	content, rest, diags := body.PartialContent(libvirtSchema)
	if diags.HasErrors() {
		return nil, rest, diags
	}
	if typ == "qemu" && len(content.Attributes) == 0 {
		return nil, rest, nil
	}
	lv := &Libvirt{}
	for name, a := range content.Attributes {
		// null means unset, as in decodeFlat.
		value, more := a.Expr.Value(ctx)
		diags = append(diags, more...)
		if more.HasErrors() || value.IsNull() {
			continue
		}
		expr := hcl.StaticExpr(value, a.Expr.Range())
		switch name {
		case "libvirt_uris":
			diags = append(diags, gohcl.DecodeExpression(expr, nil, &lv.URIs)...)
		case "libvirt_host_limit":
			diags = append(diags, gohcl.DecodeExpression(expr, nil, &lv.HostLimit)...)
		default:
			diags = append(diags, gohcl.DecodeExpression(expr, nil, lv.field(name))...)
		}
	}
	if diags.HasErrors() {
		return nil, rest, diags
	}
	if typ == "qemu" && lv.URI == "" && len(lv.URIs) == 0 {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "libvirt options without libvirt_uri",
			Detail:   "A qemu source runs on libvirt only when libvirt_uri (or libvirt_uris) is set; set it or remove the libvirt options.",
			Subject:  body.MissingItemRange().Ptr(),
		})
	}
	diags = append(diags, lv.prepare(body.MissingItemRange())...)
	return lv, rest, diags
}

func (lv *Libvirt) field(name string) *string {
	switch name {
	case "libvirt_uri":
		return &lv.URI
	case "domain_type":
		return &lv.DomainType
	case "storage_pool":
		return &lv.StoragePool
	case "storage_pool_path":
		return &lv.StoragePoolPath
	case "network":
		return &lv.Network
	case "http_ip":
		return &lv.HTTPIP
	case "disk_bus":
		return &lv.DiskBus
	}
	panic("unknown libvirt option " + name)
}

// prepare validates and applies defaults.
func (lv *Libvirt) prepare(rng hcl.Range) hcl.Diagnostics {
	var diags hcl.Diagnostics
	bad := func(summary, detail string) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: rng.Ptr()})
	}
	if lv.URI != "" && len(lv.URIs) > 0 {
		bad("Both libvirt_uri and libvirt_uris are set", "Use libvirt_uri for one host or libvirt_uris for a host pool, not both.")
	}
	if lv.URI == "" && len(lv.URIs) == 0 {
		lv.URI = "qemu:///system"
	}
	for _, u := range append([]string{lv.URI}, lv.URIs...) {
		if u == "" {
			continue
		}
		if err := checkLibvirtURI(u); err != nil {
			bad("Invalid libvirt URI", err.Error())
		}
	}
	if lv.HostLimit < 0 {
		bad("Invalid libvirt_host_limit", "libvirt_host_limit must be at least 1.")
	}
	if lv.HostLimit == 0 {
		lv.HostLimit = 1
	}
	switch lv.DomainType {
	case "", "kvm", "qemu":
	default:
		bad("Invalid domain_type", fmt.Sprintf("domain_type %q: want \"kvm\" or \"qemu\" (TCG).", lv.DomainType))
	}
	if lv.StoragePool == "" {
		lv.StoragePool = "default"
	}
	if lv.Network == "" {
		lv.Network = "default"
	}
	return diags
}

func checkLibvirtURI(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q: %v", s, err)
	}
	driver, transport, _ := strings.Cut(u.Scheme, "+")
	if driver != "qemu" {
		return fmt.Errorf("%q: kiln drives QEMU through libvirt; the URI must start with qemu:// or qemu+TRANSPORT://", s)
	}
	switch transport {
	case "", "unix", "ssh", "libssh", "libssh2", "tcp":
	default:
		return fmt.Errorf("%q: transport %q is not supported (use unix, ssh or tcp)", s, transport)
	}
	if u.Path != "/system" && u.Path != "/session" {
		return fmt.Errorf("%q: the path must be /system or /session", s)
	}
	return nil
}

// applyLibvirtDefaults adjusts qemu defaults that are wrong on libvirt,
// before QEMU.prepare fills the rest: the guest is on a bridge, not
// QEMU's user network, so an HTTP server on 127.0.0.1 is unreachable.
func applyLibvirtDefaults(q *QEMU) {
	if q.HTTPBindAddress == "" {
		q.HTTPBindAddress = "0.0.0.0"
	}
}
