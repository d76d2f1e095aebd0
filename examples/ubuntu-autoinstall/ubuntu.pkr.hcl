# Ubuntu 24.04 server with autoinstall. The cloud-init seed (user-data,
# meta-data) is put on a CD labelled "cidata" that kiln writes itself, in
# Go (no xorriso needed); the boot command only adds "autoinstall" to the
# kernel command line in GRUB's editor. Build with
#   kiln build examples/ubuntu-autoinstall
variable "password_hash" {
  type        = string
  description = "SHA-512 crypt of the ubuntu user's password (mkpasswd -m sha-512)."
  default     = "$6$kilnexample$3ZJ2Xnq8kV0Z2G0b7B2r3tq9WvF0Y6wq3r5U3S1c6l8JmQb1cJk7w0vZbA8H4qUeV1zP4m3rGx6yTdBfE9gL/0"
  sensitive   = true
}

variable "ssh_password" {
  type      = string
  default   = "ubuntu"
  sensitive = true
}

source "qemu" "ubuntu" {
  iso_url      = "https://releases.ubuntu.com/24.04/ubuntu-24.04.1-live-server-amd64.iso"
  iso_checksum = "file:https://releases.ubuntu.com/24.04/SHA256SUMS"

  disk_size = "10G"
  memory    = 2048
  cpus      = 2
  headless  = true

  cd_label = "cidata"
  cd_content = {
    "meta-data" = ""
    "user-data" = templatefile("${path.root}/user-data.pkrtpl", { password_hash = var.password_hash })
  }

  boot_wait = "5s"
  boot_command = [
    "e<wait><down><down><down><end>",
    " autoinstall<f10>",
  ]

  ssh_username     = "ubuntu"
  ssh_password     = var.ssh_password
  ssh_timeout      = "45m"
  shutdown_command = "echo '${var.ssh_password}' | sudo -S shutdown -P now"
  output_directory = "output-ubuntu"
  vm_name          = "ubuntu-24.04.qcow2"
}

build {
  sources = ["source.qemu.ubuntu"]

  provisioner "shell" {
    execute_command = "echo '${var.ssh_password}' | sudo -S sh -c '{{ .Vars }} {{ .Path }}'"
    inline          = ["apt-get update", "apt-get -y upgrade"]
  }
}
