# Three brokers, one per AZ, each an Auto Scaling group of exactly one
# instance (nodes.tf) with its own data volume and Elastic IP (data.tf)
# that outlive the instance, behind one Network Load Balancer (nlb.tf).
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

  # Deliberately minimal: what the boot-time scripts cannot find out from
  # IMDS. Everything else (VPC, private IP, instance id, AZ) comes from
  # IMDS; the secrets from Secrets Manager under tribune/<name>/; this AZ's
  # data volume and Elastic IP from their tags (data.tf).
  user_data = templatefile("${path.module}/user_data.tftpl", {
    region      = data.aws_region.current.name
    tag_key     = var.discovery_tag_key
    cluster     = var.name
    client_host = coalesce(var.client_hostname, "-")
  })
}
