# Installer path: boot the test installer ISO, wait for its prompt on the
# serial console, type the boot command (over QMP or VNC), serve the answer
# file, and let the installer power the guest off (communicator = "none"):
# qemu.install. qemu.install-ssh is the usual path instead: the installer
# reboots into the installed system, kiln logs in over SSH and provisions.
variable "installer_dir" {
  type = string
}

variable "out" {
  type = string
}

variable "name" {
  type    = string
  default = "kiln-install"
}

variable "transport" {
  type    = string
  default = "qmp"
}

variable "efi" {
  type    = bool
  default = false
}

variable "kernel" {
  type        = bool
  default     = false
  description = "Boot the ISO's kernel directly (boot_kernel) instead of typing at the prompt."
}

variable "answer_path" {
  type        = string
  default     = "/ks.sh"
  description = "The path typed on the kernel command line; a wrong one tests http_wait_fetched."
}

variable "ssh_key" {
  type    = string
  default = ""
}

locals {
  # The answer file; %s is how the installer finishes: poweroff or reboot.
  ks = "install-disk /dev/vda\necho 'installed by kiln: A_Z:b+c!d@e' > /target/installed-by.txt\nfinish %s\n"
}

source "qemu" "install" {
  iso_url      = "${var.installer_dir}/installer.iso"
  iso_checksum = "file:${var.installer_dir}/SHA256SUMS"
  disk_size    = "128M"
  memory       = 512
  accelerator  = "tcg"
  efi_boot     = var.efi

  boot_kernel      = var.kernel ? "/install/vmlinuz" : null
  boot_initrd      = var.kernel ? "/install/initrd.gz" : null
  boot_kernel_args = "console=ttyS0 kiln.ks=http://{{ .HTTPIP }}:{{ .HTTPPort }}${var.answer_path} kiln.typed=A_Z:b+c!d@e%f^g*h~i?j(k)l,m.n/o-p=q"

  boot_wait_serial       = "kiln-installer: boot prompt ready"
  boot_command_transport = var.transport
  boot_key_interval      = "40ms"
  boot_command           = var.kernel ? [] : ["install kiln.ks=http://{{ .HTTPIP }}:{{ .HTTPPort }}${var.answer_path} kiln.typed=A_Z:b+c!d@e%f^g*h~i?j(k)l,m.n/o-p=q<enter>"]

  http_wait_fetched         = ["/ks.sh"]
  http_wait_fetched_timeout = var.answer_path == "/ks.sh" ? "90s" : "40s"

  shutdown_timeout = "3m"
  output_directory = "${var.out}/${source.name}"
  vm_name          = "${var.name}.qcow2"
}

build {
  source "source.qemu.install" {
    name = "install"
    http_content = {
      "/ks.sh" = format(local.ks, "poweroff")
    }
    communicator = "none"
  }

  source "source.qemu.install" {
    name = "install-ssh"
    http_content = {
      "/ks.sh" = format(local.ks, "reboot")
    }
    communicator         = "ssh"
    ssh_username         = "root"
    ssh_private_key_file = var.ssh_key
    ssh_timeout          = "5m"
  }

  provisioner "shell" {
    only   = ["qemu.install-ssh"]
    inline = ["echo provisioned after install > /data/provisioned.txt", "sync"]
  }
}
