# End-to-end template for finding the guest by DHCP on libvirt
# (e2e/libvirt_dhcp_test.go): the test guest, changed by the test to take
# its address from libvirt's dnsmasq, on a NAT network with a DHCP range.
# No ssh_host: kiln must find the address itself (from the network's
# leases). The provisioner records the SSH connection as the guest saw it,
# so the test can check which address kiln reached.
variable "guest_dir" {
  type = string
}

variable "out" {
  type = string
}

variable "network" {
  type = string
}

variable "root_password" {
  type      = string
  default   = "kiln-root-pw-3f9a"
  sensitive = true
}

source "libvirt" "dhcp" {
  libvirt_uri      = "qemu:///system"
  domain_type      = "qemu"
  network          = var.network
  disk_image       = true
  iso_url          = "${var.guest_dir}/guest.qcow2"
  iso_checksum     = "file:${var.guest_dir}/SHA256SUMS"
  disk_size        = "96M"
  format           = "qcow2"
  memory           = 256
  ssh_username     = "root"
  ssh_password     = var.root_password
  ssh_timeout      = "3m"
  shutdown_command = "poweroff"
  shutdown_timeout = "1m"
  vm_name          = "guest"
  output_directory = "${var.out}/dhcp"
}

build {
  name    = "lv"
  sources = ["source.libvirt.dhcp"]

  provisioner "shell" {
    inline = [
      "echo provisioned by ${source.name} on libvirt > /data/provisioned.txt",
      "echo \"$SSH_CONNECTION\" > /data/ssh_connection.txt",
      "echo kiln-e2e: provisioning ${source.name}",
    ]
  }

  provisioner "file" {
    source      = "${path.root}/payload.txt"
    destination = "/data/payload.txt"
  }
}
