# Debian 12 from the netinst ISO with a preseed file, the classic Packer
# QEMU template: kiln runs it as is. Build with
#   kiln build examples/debian-preseed
# (downloads ~650 MB; needs KVM or a lot of patience under TCG).
variable "debian_version" {
  type    = string
  default = "12.8.0"
}

variable "root_password" {
  type      = string
  default   = "change-me"
  sensitive = true
}

source "qemu" "debian" {
  iso_url      = "https://cdimage.debian.org/cdimage/archive/${var.debian_version}/amd64/iso-cd/debian-${var.debian_version}-amd64-netinst.iso"
  iso_checksum = "file:https://cdimage.debian.org/cdimage/archive/${var.debian_version}/amd64/iso-cd/SHA256SUMS"

  disk_size   = "8G"
  format      = "qcow2"
  memory      = 1024
  cpus        = 2
  headless    = true
  http_directory = "${path.root}/http"

  boot_wait = "5s"
  boot_command = [
    "<esc><wait>",
    "auto preseed/url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/preseed.cfg ",
    "debian-installer=en_US.UTF-8 locale=en_US.UTF-8 keyboard-configuration/xkb-keymap=us ",
    "netcfg/get_hostname=debian netcfg/get_domain=local ",
    "passwd/root-password=${var.root_password} passwd/root-password-again=${var.root_password} ",
    "fb=false debconf/frontend=noninteractive grub-installer/bootdev=/dev/vda<enter>",
  ]
  # kiln extension: fail fast (with a screenshot) if the installer never
  # asks for its preseed file.
  http_wait_fetched = ["/preseed.cfg"]

  ssh_username     = "root"
  ssh_password     = var.root_password
  ssh_timeout      = "30m"
  shutdown_command = "systemctl poweroff"
  output_directory = "output-debian"
  vm_name          = "debian-${var.debian_version}.qcow2"
}

build {
  sources = ["source.qemu.debian"]

  provisioner "shell" {
    inline = ["apt-get update", "apt-get -y upgrade", "apt-get clean"]
  }
}
