# The Tribune AMI: Debian 12, the three release binaries, hardened systemd
# units, a boot unit that attaches the AZ's data volume and Elastic IP, and
# a boot-time renderer that builds /etc/tribune/broker.conf (and auth.toml,
# bridge.conf) from user data (region, tag key, cluster name, client host),
# instance metadata (IMDSv2) and the secrets tribune/<cluster>/* in Secrets
# Manager.
#
#   make ami                                  # static build, packer init, packer build
#   packer validate -var bin_dir=DIR packer/  # Packer >= 1.7 (after packer init packer/)
#   packer validate -var bin_dir=DIR packer/packer-1.6/   # Debian's Packer 1.6.6
#
# Only the attributes both Packer 1.6.6's built-in amazon-ebs and the
# amazon plugin (versions.pkr.hcl) accept are used here, so one template
# serves both; scripts/layout.sh picks the directory for the installed Packer.

locals {
  stamp    = formatdate("YYYYMMDDhhmmss", timestamp())
  ami_name = "tribune-${var.version}-${var.arch}-${local.stamp}"
  # Debian's image names and EC2's architecture names for var.arch.
  debian_arch   = var.arch == "arm64" ? "arm64" : "amd64"
  instance_type = var.instance_type != "" ? var.instance_type : (var.arch == "arm64" ? "c7g.large" : "c7i.large")
  manifest      = var.manifest != "" ? var.manifest : "${path.root}/manifest.json"
}

source "amazon-ebs" "tribune" {
  region        = var.region
  instance_type = local.instance_type
  subnet_id     = var.subnet_id
  ssh_username  = "admin"
  ssh_interface = "public_ip"

  # Official Debian 12 images (Debian's AWS account). Debian ships what the
  # renderer needs as packages: python3 and python3-boto3.
  source_ami_filter {
    filters = {
      name                = "debian-12-${local.debian_arch}-*"
      architecture        = var.arch
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
    owners      = ["136693071363"]
    most_recent = true
  }

  # IMDSv2: Packer 1.6.6's amazon-ebs has neither `metadata_options` (for
  # the builder) nor `imds_support` (for the AMI). So `make ami` marks the
  # new AMI ImdsSupport=v2.0 right after the build (scripts/require_imdsv2.py),
  # which makes every instance launched from it IMDSv2-only by default, and
  # Terraform launches the brokers with http_tokens = "required" in any case.
  # Nothing on the builder reads IMDS except cloud-init at first boot.

  # Encrypted root volume, and an encrypted AMI snapshot.
  launch_block_device_mappings {
    device_name           = "/dev/xvda"
    volume_size           = 8
    volume_type           = "gp3"
    throughput            = 125
    iops                  = 3000
    encrypted             = true
    kms_key_id            = var.kms_key_id
    delete_on_termination = true
  }
  encrypt_boot = true
  kms_key_id   = var.kms_key_id
  ami_users    = var.ami_users

  ami_name        = local.ami_name
  ami_description = "Tribune ${var.version}: tribune-broker, tribune-auth, tribune-bridge on Debian 12 ${var.arch}"
  tags = {
    Name              = local.ami_name
    "tribune:image"   = "broker"
    "tribune:version" = var.version
    "tribune:arch"    = var.arch
    "tribune:base"    = "{{ .SourceAMIName }}"
  }
  run_tags = {
    Name = "packer-${local.ami_name}"
  }
}

build {
  sources = ["source.amazon-ebs.tribune"]

  provisioner "shell" {
    inline = ["mkdir -p /tmp/tribune/bin /tmp/tribune/files"]
  }

  provisioner "file" {
    source      = "${var.bin_dir}/tribune-broker"
    destination = "/tmp/tribune/bin/tribune-broker"
  }

  provisioner "file" {
    source      = "${var.bin_dir}/tribune-auth"
    destination = "/tmp/tribune/bin/tribune-auth"
  }

  provisioner "file" {
    source      = "${var.bin_dir}/tribune-bridge"
    destination = "/tmp/tribune/bin/tribune-bridge"
  }

  # Trailing slash: the directory's contents, not the directory itself.
  provisioner "file" {
    source      = "${path.root}/files/"
    destination = "/tmp/tribune/files"
  }

  provisioner "shell" {
    execute_command = "sudo -n env {{ .Vars }} bash -euo pipefail {{ .Path }}"
    script          = "${path.root}/scripts/install.sh"
  }

  # The verify step: all three binaries run on this image (its kernel, its
  # libc, its architecture), the rendered config passes the broker's own
  # check, units pass systemd-analyze and carry the hardening.
  provisioner "shell" {
    execute_command = "sudo -n env {{ .Vars }} bash -euo pipefail {{ .Path }}"
    scripts         = ["${path.root}/scripts/verify-binaries.sh", "${path.root}/scripts/verify.sh"]
  }

  provisioner "shell" {
    execute_command = "sudo -n env {{ .Vars }} bash -euo pipefail {{ .Path }}"
    script          = "${path.root}/scripts/cleanup.sh"
  }

  # packer/manifest.json: `make deploy` reads the new AMI ID from it.
  post-processor "manifest" {
    output     = local.manifest
    strip_path = true
    custom_data = {
      version = var.version
    }
  }
}
