# Typing through libvirt (virDomainSendKey): the installer ISO's kernel,
# uploaded to the pool as volumes and booted directly with "kiln.keys", so
# its init echoes every line typed on the keyboard to the serial console
# ("kiln-installer: typed: <line>"). e2e/libvirt_test.go compares it.
variable "installer_dir" {
  type = string
}

variable "out" {
  type = string
}

variable "text" {
  type = string
}

source "libvirt" "typing" {
  libvirt_uri  = "qemu:///system"
  domain_type  = "qemu"
  network      = "kiln-e2e"
  iso_url      = "${var.installer_dir}/installer.iso"
  iso_checksum = "file:${var.installer_dir}/SHA256SUMS"
  disk_size    = "8M"
  memory       = 512

  boot_kernel      = "/install/vmlinuz"
  boot_initrd      = "/install/initrd.gz"
  boot_kernel_args = "console=ttyS0 kiln.keys"

  boot_wait_serial  = "kiln-installer: keys: ready"
  boot_key_interval = "20ms"
  boot_command      = ["${var.text}<enter>poweroff<enter>"]

  communicator     = "none"
  shutdown_timeout = "1m"
  output_directory = var.out
}

build {
  name    = "lv"
  sources = ["source.libvirt.typing"]
}
