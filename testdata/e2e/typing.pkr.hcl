# Typing target: the installer ISO's kernel booted directly with
# "kiln.keys", so its init echoes every line typed on the keyboard to the
# serial console ("kiln-installer: typed: <line>"). The boot command types
# var.text and then "poweroff". Used by the typing
# benchmark (make bench).
variable "installer_dir" {
  type = string
}

variable "out" {
  type = string
}

variable "text" {
  type = string
}

variable "transport" {
  type    = string
  default = "qmp"
}

variable "interval" {
  type    = string
  default = "10ms"
}

source "qemu" "typing" {
  iso_url      = "${var.installer_dir}/installer.iso"
  iso_checksum = "file:${var.installer_dir}/SHA256SUMS"
  disk_size    = "8M"
  memory       = 512
  accelerator  = "tcg"

  boot_kernel      = "/install/vmlinuz"
  boot_initrd      = "/install/initrd.gz"
  boot_kernel_args = "console=ttyS0 kiln.keys"

  boot_wait_serial       = "kiln-installer: keys: ready"
  boot_command_transport = var.transport
  boot_key_interval      = var.interval
  boot_command           = ["${var.text}<enter>poweroff<enter>"]

  communicator     = "none"
  shutdown_timeout = "1m"
  output_directory = var.out
}

build {
  sources = ["source.qemu.typing"]
}
