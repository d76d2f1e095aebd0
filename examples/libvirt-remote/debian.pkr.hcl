# A Debian install on a remote KVM host through libvirt (kiln's libvirt
# backend; README "libvirt"). kiln runs on your machine: the ISO and the disk
# travel to the host as storage volumes over the libvirt connection, the VM
# runs there, and the finished disk is downloaded into output_directory.
#
#   kiln build -var host=kvm1.example.org -var kiln_ip=192.0.2.10 examples/libvirt-remote
#
# Needs: ssh access as a user in the host's libvirt group (key in your
# ssh agent or keyfile=), the host in ~/.ssh/known_hosts, and a network on
# the host whose guests can reach kiln_ip (the address of this machine) on
# the HTTP port, for the preseed file.
variable "host" {
  type = string
}

variable "root_password" {
  type      = string
  default   = "change-me"
  sensitive = true
}

variable "kiln_ip" {
  type        = string
  description = "This machine's address as the guest sees it: where the preseed is served."
}

source "libvirt" "debian" {
  libvirt_uri  = "qemu+ssh://builder@${var.host}/system"
  domain_type  = "kvm"
  storage_pool = "default"
  network      = "default"

  iso_url      = "https://cdimage.debian.org/cdimage/archive/12.8.0/amd64/iso-cd/debian-12.8.0-amd64-netinst.iso"
  iso_checksum = "file:https://cdimage.debian.org/cdimage/archive/12.8.0/amd64/iso-cd/SHA256SUMS"
  disk_size    = "8G"
  format       = "qcow2"
  memory       = 2048
  cpus         = 2

  http_directory    = "${path.root}/http"
  http_bind_address = "0.0.0.0"
  http_ip           = var.kiln_ip
  boot_wait         = "5s"
  boot_command = [
    "<esc><wait>",
    "auto preseed/url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/preseed.cfg ",
    "debian-installer=en_US.UTF-8 locale=en_US.UTF-8 keyboard-configuration/xkb-keymap=us ",
    "netcfg/get_hostname=debian netcfg/get_domain=local ",
    "passwd/root-password=${var.root_password} passwd/root-password-again=${var.root_password} ",
    "fb=false debconf/frontend=noninteractive grub-installer/bootdev=/dev/vda<enter>",
  ]
  http_wait_fetched = ["/preseed.cfg"]

  ssh_username     = "root"
  ssh_password     = var.root_password
  ssh_timeout      = "30m"
  shutdown_command = "systemctl poweroff"
  output_directory = "output-debian-libvirt"
}

build {
  sources = ["source.libvirt.debian"]

  provisioner "shell" {
    inline = ["apt-get -y clean"]
  }
}
