# Fault-injection template for e2e/faults_test.go: one qcow2 build of the
# test guest whose output (and hidden work directory, its sibling) goes where
# the test says, with a provisioner that can break the SSH connection.
variable "guest_dir" {
  type = string
}

variable "out" {
  type        = string
  description = "output_directory; the full-disk test puts it on a small tmpfs."
}

variable "name" {
  type        = string
  default     = "kiln-faults"
  description = "vm_name prefix; tests make it unique to find their QEMU processes."
}

variable "root_password" {
  type      = string
  default   = "kiln-root-pw-3f9a"
  sensitive = true
}

variable "fault" {
  type        = string
  default     = ""
  description = "\"kill-sshd\": kill every sshd (the session too); \"link-down\": take the guest's network link down; \"reboot\": reboot the guest with expect_disconnect = true; \"fill-disk\": write 30 MiB to the guest's disk."
}

source "qemu" "faults" {
  disk_image       = true
  use_backing_file = false
  iso_url          = "${var.guest_dir}/guest.qcow2"
  iso_checksum     = "file:${var.guest_dir}/SHA256SUMS"
  disk_size        = "64M"
  format           = "qcow2"
  memory           = 256
  accelerator      = "tcg"
  headless         = true
  ssh_username     = "root"
  ssh_password     = var.root_password
  ssh_timeout      = "3m"
  shutdown_command = "poweroff"
  shutdown_timeout = "1m"
  output_directory = var.out
  vm_name          = "${var.name}-faults"
}

build {
  sources = ["source.qemu.faults"]

  # /tmp is in the guest's RAM: the marker is gone after a reboot.
  provisioner "shell" {
    inline = ["touch /tmp/kiln-first-boot", "echo kiln-faults: first provisioner ran"]
  }

  provisioner "shell" {
    name              = "fault"
    expect_disconnect = var.fault == "reboot"
    # The sleeps after the fault keep the script running until the
    # connection is gone, so the drop always happens mid-command. The one
    # before it lets the echo reach kiln first.
    inline = var.fault == "kill-sshd" ? ["echo kiln-faults: killing sshd", "sleep 1", "killall -9 sshd", "sleep 60"] : var.fault == "link-down" ? ["echo kiln-faults: taking eth0 down", "sleep 1", "ip link set eth0 down", "sleep 600"] : var.fault == "reboot" ? ["echo kiln-faults: rebooting", "sleep 1", "reboot", "sleep 60"] : var.fault == "fill-disk" ? ["echo kiln-faults: filling the disk", "dd if=/dev/urandom of=/data/big bs=1M count=30", "sync"] : ["true"]
  }

  provisioner "shell" {
    inline = [
      "if [ -e /tmp/kiln-first-boot ]; then echo kiln-faults: same boot; else echo kiln-faults: after reboot; fi",
      "echo provisioned > /data/faults.txt",
      "echo kiln-faults: last guest provisioner ran",
    ]
  }

  # shell-local writes its script to $TMPDIR: the full-TMPDIR test's fault.
  provisioner "shell-local" {
    inline = ["echo kiln-faults: shell-local ran"]
  }
}
