# Three brokers, one per AZ, each with an Elastic IP.
#
# for_each over the AZ => subnet map (not count), so removing or re-adding
# one AZ touches only that node.

data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  # Tags discovery reads: every running instance with tag
  # <discovery_tag_key>=<name> in this VPC is a peer (see the broker's
  # cluster.discovery.ec2 block, rendered at boot from user_data).
  discovery_tags = { (var.discovery_tag_key) = var.name }

  # Deliberately minimal: what the boot-time renderer cannot find out from
  # IMDS. Everything else (VPC, private and public IP, instance id) comes
  # from IMDS; the TLS material from Secrets Manager at tribune/<name>/tls.
  user_data = templatefile("${path.module}/user_data.tftpl", {
    region  = data.aws_region.current.name
    tag_key = var.discovery_tag_key
    cluster = var.name
  })
}

resource "aws_instance" "node" {
  #checkov:skip=CKV_AWS_126:Detailed monitoring is var.detailed_monitoring, true by default and in the AWS root; checkov flags the LocalStack example, which turns it off because LocalStack does not implement MonitorInstances.
  for_each = var.subnet_ids

  ami                    = var.ami_id
  instance_type          = var.instance_type
  subnet_id              = each.value
  vpc_security_group_ids = [aws_security_group.cluster.id]
  iam_instance_profile   = var.attach_instance_profile ? aws_iam_instance_profile.node.name : null
  key_name               = var.key_name
  monitoring             = var.detailed_monitoring
  ebs_optimized          = true
  user_data              = local.user_data

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required" # IMDSv2 only
    http_put_response_hop_limit = 1          # no containers on the host need IMDS
    instance_metadata_tags      = "disabled"
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = var.root_volume_size_gb
    encrypted             = true
    kms_key_id            = var.ebs_kms_key_arn
    delete_on_termination = true
    tags                  = merge(var.tags, { Name = "${var.name}-${each.key}-root" })
  }

  tags = merge(var.tags, local.discovery_tags, {
    Name           = "${var.name}-${each.key}"
    "tribune:az"   = each.key
    "tribune:role" = "broker"
  })

  lifecycle {
    # A new AMI must not replace all three brokers in one apply (that is a
    # full outage). Binaries roll with `make upgrade`; to move a node to a
    # new AMI, replace one AZ at a time:
    #   terraform apply -replace='module.cluster.aws_instance.node["<az>"]'
    ignore_changes = [ami, user_data]

    precondition {
      condition     = strcontains(var.tls_secret_arn, ":secret:tribune/${var.name}/tls-")
      error_message = "tls_secret_arn must name the secret tribune/${var.name}/tls: the nodes fetch it by that name at boot."
    }
  }
}

resource "aws_eip" "node" {
  for_each = aws_instance.node

  domain   = "vpc"
  instance = each.value.id
  tags     = merge(var.tags, { Name = "${var.name}-${each.key}" })
}
