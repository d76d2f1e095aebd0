# End-to-end template for the libvirt host pool (e2e/libvirt_pool_test.go):
# three builds of the test guest over a pool of two libvirt URIs with at
# most one build on each. The test gives the local URI and a qemu+ssh://
# one through its own loopback sshd: one libvirtd, two hosts to kiln. The
# builds run at the same time on one network, so each boots a copy of the
# guest with its own static address (guest_dir_b, guest_dir_c: made by
# the test, 10.0.2.16 and 10.0.2.17).
variable "guest_dir" {
  type = string
}

variable "guest_dir_b" {
  type = string
}

variable "guest_dir_c" {
  type = string
}

variable "ssh_uri" {
  type = string
}

variable "out" {
  type = string
}

variable "root_password" {
  type      = string
  default   = "kiln-root-pw-3f9a"
  sensitive = true
}

source "libvirt" "guest" {
  libvirt_uris       = ["qemu:///system", var.ssh_uri]
  libvirt_host_limit = 1
  domain_type        = "qemu"
  network            = "kiln-e2e"
  disk_image         = true
  disk_size          = "96M"
  format             = "qcow2"
  memory             = 256
  ssh_username       = "root"
  ssh_password       = var.root_password
  ssh_timeout        = "3m"
  shutdown_command   = "poweroff"
  shutdown_timeout   = "1m"
  vm_name            = "guest"
}

build {
  name = "lv"

  source "source.libvirt.guest" {
    name             = "a"
    iso_url          = "${var.guest_dir}/guest.qcow2"
    iso_checksum     = "file:${var.guest_dir}/SHA256SUMS"
    ssh_host         = "10.0.2.15"
    output_directory = "${var.out}/a"
  }

  source "source.libvirt.guest" {
    name             = "b"
    iso_url          = "${var.guest_dir_b}/guest.qcow2"
    iso_checksum     = "file:${var.guest_dir_b}/SHA256SUMS"
    ssh_host         = "10.0.2.16"
    output_directory = "${var.out}/b"
  }

  source "source.libvirt.guest" {
    name             = "c"
    iso_url          = "${var.guest_dir_c}/guest.qcow2"
    iso_checksum     = "file:${var.guest_dir_c}/SHA256SUMS"
    ssh_host         = "10.0.2.17"
    output_directory = "${var.out}/c"
  }

  provisioner "shell" {
    inline = [
      "echo provisioned by ${source.name} on libvirt > /data/provisioned.txt",
      "echo kiln-e2e: provisioning ${source.name}",
    ]
  }

  provisioner "file" {
    source      = "${path.root}/payload.txt"
    destination = "/data/payload.txt"
  }
}
