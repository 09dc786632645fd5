# What a node keeps across instance replacement: its JetStream data volume
# and its Elastic IP, one of each per AZ, owned by Terraform rather than by
# an instance. At boot, attach-data-volume (packer/files) finds the pair by
# the tags below (cluster, AZ, role), attaches and mounts the volume at
# /var/lib/tribune and moves the Elastic IP onto the new instance.

locals {
  data_volume_tags = {
    for az in keys(var.subnet_ids) : az => merge(var.tags, local.discovery_tags, {
      Name           = "${var.name}-${az}-data"
      "tribune:az"   = az
      "tribune:role" = "jetstream-data"
      # The scheduled snapshots' target (snapshots.tf).
      "tribune:snapshots" = var.name
    })
  }
}

resource "aws_ebs_volume" "data" {
  #checkov:skip=CKV_AWS_189:Encrypted always; the key is var.ebs_kms_key_arn, which defaults to the account's EBS key (aws/ebs) like the root volumes, so a deployment without a customer-managed key still works. Set ebs_kms_key_arn for a CMK.
  for_each = var.subnet_ids

  availability_zone = each.key
  type              = "gp3"
  size              = var.data_volume_size_gb
  iops              = var.data_volume_iops
  throughput        = var.data_volume_throughput
  encrypted         = true
  kms_key_id        = var.ebs_kms_key_arn
  # A destroy (or a replacement forced by a changed AZ or key) keeps a
  # snapshot of the node's JetStream store.
  final_snapshot = var.data_volume_final_snapshot
  # Restoring (README "Restore JetStream from snapshots"): the volume is
  # replaced (terraform apply -replace=...) and the new one starts from
  # this snapshot. Only read when the volume is created, so leaving the
  # variable set, or clearing it, never replaces a volume by itself.
  snapshot_id = lookup(var.data_volume_snapshot_ids, each.key, null)

  tags = local.data_volume_tags[each.key]

  lifecycle {
    ignore_changes = [snapshot_id]
  }
}

resource "aws_eip" "node" {
  #checkov:skip=CKV2_AWS_19:Deliberately not tied to an instance in Terraform: the broker of this AZ associates it with itself at boot (attach-data-volume), so it survives and follows instance replacement.
  for_each = var.subnet_ids

  domain = "vpc"
  tags = merge(var.tags, local.discovery_tags, {
    Name           = "${var.name}-${each.key}"
    "tribune:az"   = each.key
    "tribune:role" = "broker-address"
  })
}
