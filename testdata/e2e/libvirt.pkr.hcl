# End-to-end template for the libvirt backend (e2e/libvirt_test.go): the
# test guest built on a libvirt host, once as a `libvirt` source and once
# as a `qemu` source sent to libvirt with libvirt_uri. The guest has a
# static address (10.0.2.15, gateway 10.0.2.2), so the test puts it on a
# network where the host is 10.0.2.2 and gives ssh_host.
variable "guest_dir" {
  type = string
}

variable "out" {
  type = string
}

variable "uri" {
  type    = string
  default = "qemu:///system"
}

variable "network" {
  type    = string
  default = "kiln-e2e"
}

variable "fault" {
  type        = string
  default     = ""
  description = "\"hang\" makes a provisioner hang (the test interrupts kiln), \"fail\" makes one fail."
}

variable "root_password" {
  type      = string
  default   = "kiln-root-pw-3f9a"
  sensitive = true
}

source "libvirt" "guest" {
  libvirt_uri      = var.uri
  domain_type      = "qemu"
  network          = var.network
  disk_image       = true
  iso_url          = "${var.guest_dir}/guest.qcow2"
  iso_checksum     = "file:${var.guest_dir}/SHA256SUMS"
  disk_size        = "96M"
  format           = "qcow2"
  memory           = 256
  ssh_host         = "10.0.2.15"
  ssh_username     = "root"
  ssh_password     = var.root_password
  ssh_timeout      = "3m"
  shutdown_command = "poweroff"
  shutdown_timeout = "1m"
  vm_name          = "guest"
  output_directory = "${var.out}/libvirt"
}

source "qemu" "onlibvirt" {
  libvirt_uri      = var.uri
  network          = var.network
  accelerator      = "tcg"
  disk_image       = true
  iso_url          = "${var.guest_dir}/guest.qcow2"
  iso_checksum     = "file:${var.guest_dir}/SHA256SUMS"
  disk_size        = "96M"
  format           = "raw"
  memory           = 256
  ssh_host         = "10.0.2.15"
  ssh_username     = "root"
  ssh_password     = var.root_password
  ssh_timeout      = "3m"
  shutdown_command = "poweroff"
  shutdown_timeout = "1m"
  vm_name          = "guest"
  output_directory = "${var.out}/qemu"
}

build {
  name    = "lv"
  sources = ["source.libvirt.guest", "source.qemu.onlibvirt"]

  provisioner "shell" {
    inline = [
      "echo provisioned by ${source.name} on libvirt > /data/provisioned.txt",
      "echo kiln-e2e: provisioning ${source.name}",
    ]
  }

  provisioner "shell" {
    inline = var.fault == "hang" ? ["echo kiln-e2e: hanging now", "sleep 600"] : var.fault == "fail" ? ["echo kiln-e2e: failing now", "exit 3"] : ["true"]
  }

  provisioner "file" {
    source      = "${path.root}/payload.txt"
    destination = "/data/payload.txt"
  }
}
