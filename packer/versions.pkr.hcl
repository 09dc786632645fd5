# Packer 1.7 and newer: the amazon-ebs builder is a plugin, installed by
# `packer init packer/` (`make ami` runs it) at exactly this version.
#
# Debian's Packer 1.6.6 (these build machines) has amazon-ebs built in and
# rejects `required_plugins`, so it is given the same template without this
# file: packer/packer-1.6/ (see scripts/layout.sh).
packer {
  required_version = ">= 1.7.0"
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = "1.8.0"
    }
  }
}
