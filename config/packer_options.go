package config

import (
	"fmt"
	"sort"

	"github.com/hashicorp/hcl/v2"
)

// packerOption is a Packer qemu builder option that QEMU does not carry.
// Templates written for Packer use them, so instead of HCL's generic
// "Unsupported argument" kiln says what it does with each: tuning knobs
// whose absence cannot change the image are ignored with a warning;
// anything that would change the machine or the install is an error,
// with what to use instead.
type packerOption struct {
	fatal bool
	note  string
}

var packerOnlyOptions = map[string]packerOption{
	// Ignored: connection tuning and bookkeeping.
	"run_once":                     {note: "Packer accepts it and does nothing with it."},
	"boot_keygroup_interval":       {note: "kiln paces keys with boot_key_interval only."},
	"http_network_protocol":        {note: "kiln's HTTP server listens on TCP."},
	"http_interface":               {note: "the qemu builder never used it."},
	"ssh_pty":                      {note: "kiln does not request a PTY."},
	"ssh_file_transfer_method":     {note: "kiln always uploads over SFTP."},
	"ssh_read_write_timeout":       {note: "kiln relies on keep-alives instead."},
	"ssh_disable_agent_forwarding": {note: "kiln never forwards an agent."},
	"ssh_clear_authorized_keys":    {note: "kiln's temporary key is only used for the build."},
	"temporary_key_pair_bits":      {note: "kiln's default temporary key is ed25519, which has a fixed size."},
	"ssh_ciphers":                  {note: "kiln uses x/crypto/ssh defaults."},
	"ssh_key_exchange_algorithms":  {note: "kiln uses x/crypto/ssh defaults."},
	"efi_drop_efivars":             {note: "kiln's artifact list is decided by its exporters."},
	"use_default_display":          {note: "kiln runs QEMU headless."},
	"qmp_enable":                   {note: "kiln always drives QEMU over QMP."},
	"qmp_socket_path":              {note: "kiln places its QMP socket itself."},
	"pause_before_connecting":      {note: "kiln waits for SSH with ssh_timeout."},

	// Errors: ignoring these would build a different machine.
	"floppy_files":         {fatal: true, note: "kiln attaches no floppy. Put the files on a CD with cd_files (or cd_content) and point the installer at it, e.g. cd_label = \"OEMDRV\" for kickstart or \"cidata\" for cloud-init."},
	"floppy_dirs":          {fatal: true, note: "kiln attaches no floppy. Use cd_files instead."},
	"floppy_content":       {fatal: true, note: "kiln attaches no floppy. Use cd_content instead."},
	"floppy_label":         {fatal: true, note: "kiln attaches no floppy. Use cd_label instead."},
	"iso_skip_cache":       {fatal: true, note: "kiln always downloads and verifies the ISO. Remove it."},
	"sockets":              {fatal: true, note: "Use cpus, or qemuargs = [[\"-smp\", \"cpus=4,sockets=2\"]] for a topology."},
	"cores":                {fatal: true, note: "Use cpus, or qemuargs = [[\"-smp\", \"cpus=4,cores=2\"]] for a topology."},
	"threads":              {fatal: true, note: "Use cpus, or qemuargs = [[\"-smp\", \"cpus=4,threads=2\"]] for a topology."},
	"use_pflash":           {fatal: true, note: "Use efi_boot with efi_firmware_code / efi_firmware_vars."},
	"vtpm":                 {fatal: true, note: "kiln does not start swtpm yet. Remove it or build this image with Packer."},
	"use_tpm1":             {fatal: true, note: "kiln does not start swtpm yet."},
	"tpm_device_type":      {fatal: true, note: "kiln does not start swtpm yet."},
	"net_bridge":           {fatal: true, note: "kiln uses QEMU user-mode networking only. Remove it."},
	"skip_nat_mapping":     {fatal: true, note: "kiln always forwards the SSH port from 127.0.0.1. Remove it."},
	"ssh_host_port_min":    {fatal: true, note: "Rename it to host_port_min (Packer's current name)."},
	"ssh_host_port_max":    {fatal: true, note: "Rename it to host_port_max (Packer's current name)."},
	"ssh_agent_auth":       {fatal: true, note: "kiln authenticates with ssh_password, ssh_private_key_file or its temporary key."},
	"ssh_keypair_name":     {fatal: true, note: "kiln authenticates with ssh_password, ssh_private_key_file or its temporary key."},
	"ssh_certificate_file": {fatal: true, note: "kiln does not do SSH certificate auth yet. Use ssh_private_key_file."},
	"ssh_bastion_host":     {fatal: true, note: "kiln connects directly to the forwarded local port; a bastion is never needed."},
	"ssh_proxy_host":       {fatal: true, note: "kiln connects directly to the forwarded local port; a proxy is never needed."},
	"ssh_local_tunnels":    {fatal: true, note: "kiln does not open SSH tunnels."},
	"ssh_remote_tunnels":   {fatal: true, note: "kiln does not open SSH tunnels."},
	"winrm_username":       {fatal: true, note: "kiln has no WinRM communicator; use communicator = \"ssh\"."},
	"winrm_password":       {fatal: true, note: "kiln has no WinRM communicator; use communicator = \"ssh\"."},
	"winrm_host":           {fatal: true, note: "kiln has no WinRM communicator."},
	"winrm_port":           {fatal: true, note: "kiln has no WinRM communicator."},
	"winrm_timeout":        {fatal: true, note: "kiln has no WinRM communicator."},
	"winrm_use_ssl":        {fatal: true, note: "kiln has no WinRM communicator."},
	"winrm_insecure":       {fatal: true, note: "kiln has no WinRM communicator."},
	"winrm_use_ntlm":       {fatal: true, note: "kiln has no WinRM communicator."},
}

// packerOnlyBlocks are Packer options written as blocks.
var packerOnlyBlocks = map[string]packerOption{
	"qemu_img_args": {fatal: true, note: "kiln runs qemu-img itself and takes no extra arguments for it yet. Remove the block."},
}

// stripPackerOnly reports the Packer-only options set in body and returns
// the body without them, for decodeFlat.
func stripPackerOnly(body hcl.Body) (hcl.Body, hcl.Diagnostics) {
	schema := &hcl.BodySchema{}
	for _, name := range sortedKeys(packerOnlyOptions) {
		schema.Attributes = append(schema.Attributes, hcl.AttributeSchema{Name: name})
	}
	for _, name := range sortedKeys(packerOnlyBlocks) {
		schema.Blocks = append(schema.Blocks, hcl.BlockHeaderSchema{Type: name})
	}
	content, rest, _ := body.PartialContent(schema)

	type found struct {
		name string
		opt  packerOption
		rng  hcl.Range
	}
	var all []found
	for name, a := range content.Attributes {
		all = append(all, found{name, packerOnlyOptions[name], a.NameRange})
	}
	for _, b := range content.Blocks {
		all = append(all, found{b.Type, packerOnlyBlocks[b.Type], b.TypeRange})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].rng.Start.Byte < all[j].rng.Start.Byte })

	var diags hcl.Diagnostics
	for _, f := range all {
		d := &hcl.Diagnostic{Subject: f.rng.Ptr(), Detail: f.opt.note}
		if f.opt.fatal {
			d.Severity = hcl.DiagError
			d.Summary = fmt.Sprintf("%s is not supported by kiln", f.name)
		} else {
			d.Severity = hcl.DiagWarning
			d.Summary = fmt.Sprintf("%s is ignored by kiln", f.name)
		}
		diags = append(diags, d)
	}
	return rest, diags
}
