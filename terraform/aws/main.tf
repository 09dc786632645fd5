# Tribune on AWS: VPC in three AZs, three self-healing brokers (an Auto
# Scaling group of one per AZ, with a data volume and an Elastic IP that
# outlive the instance), a Network Load Balancer, optional nats.<domain>.
#
#   make plan     terraform plan with terraform.tfvars (see terraform.tfvars.example)
#   make deploy   builds the AMI with Packer, then terraform apply with it

# The newest AMI `make ami` built, unless one is given.
data "aws_ami" "tribune" {
  count       = var.ami_id == null ? 1 : 0
  owners      = ["self"]
  most_recent = true
  filter {
    name   = "name"
    values = ["tribune-*"]
  }
  filter {
    name   = "tag:tribune:image"
    values = ["broker"]
  }
}

# Made by `make secrets` (terraform/bootstrap), outside Terraform, so no
# private key or seed passes through Terraform state; see README "Deploying
# to AWS". Terraform only looks up the cluster's KMS key and each secret by
# the name the nodes use (metadata, never a value), so a plan fails early
# and clearly when `make secrets` has not run.
data "aws_kms_alias" "secrets" {
  name = "alias/tribune-${var.cluster_name}"
}

data "aws_secretsmanager_secret" "cluster" {
  for_each = toset(["tls", "ca", "nkeys", "callout", "provider", "web-idp"])
  name     = "tribune/${var.cluster_name}/${each.key}"
}

locals {
  ami_id = var.ami_id != null ? var.ami_id : data.aws_ami.tribune[0].id
  # The name clients use, and the brokers advertise, when there is a zone.
  client_hostname = var.route53_zone_id == null || var.domain == null ? null : "nats.${var.domain}"
}

module "network" {
  source = "../modules/network"

  name                    = var.cluster_name
  vpc_cidr                = var.vpc_cidr
  availability_zones      = var.availability_zones
  flow_log_retention_days = var.flow_log_retention_days
}

module "cluster" {
  source = "../modules/cluster"

  name                = var.cluster_name
  vpc_id              = module.network.vpc_id
  subnet_ids          = module.network.subnet_ids
  ami_id              = local.ami_id
  instance_type       = var.instance_type
  key_name            = var.key_name
  client_cidrs        = var.client_cidrs
  admin_cidrs         = var.admin_cidrs
  bridge_mqtt_cidrs   = var.bridge_mqtt_cidrs
  bridge_mqtt_url     = var.bridge_mqtt_url
  secrets_kms_key_arn = data.aws_kms_alias.secrets.target_key_arn
  ebs_kms_key_arn     = var.ebs_kms_key_arn
  data_volume_size_gb = var.data_volume_size_gb
  client_hostname     = local.client_hostname

  data_volume_snapshot_ids     = var.data_volume_snapshot_ids
  data_snapshot_retain         = var.data_snapshot_retain
  data_snapshot_interval_hours = var.data_snapshot_interval_hours
  nlb_deletion_protection      = var.nlb_deletion_protection
  alarm_actions                = [aws_sns_topic.alarms.arn]
}

# Where the cluster's CloudWatch alarms go (modules/cluster/alarms.tf):
# subscribe e-mail, a pager or a chat hook to it, and, with alarm_email,
# Terraform subscribes that address (AWS mails a confirmation link first).
resource "aws_sns_topic" "alarms" {
  name              = "${var.cluster_name}-alarms"
  kms_master_key_id = aws_kms_key.alarms.arn
  tags              = var.tags
}

# The topic's key: CloudWatch must be able to use it to publish, which the
# AWS-managed alias/aws/sns key does not allow (its policy cannot be
# changed), so alarms would never reach an encrypted topic with it.
resource "aws_kms_key" "alarms" {
  description         = "Tribune ${var.cluster_name}: the alarm topic's messages"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.alarms_key.json
  tags                = var.tags
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

data "aws_iam_policy_document" "alarms_key" {
  #checkov:skip=CKV_AWS_111:KMS key policy: resources "*" means this key only.
  #checkov:skip=CKV_AWS_356:KMS key policy, where the only valid resource is "*" (the key the policy is attached to).
  #checkov:skip=CKV_AWS_109:KMS key policy: kms:* for the account root is AWS's default statement; without it a wrong policy locks everyone out of the key.
  statement {
    sid       = "AccountAdministration"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
  statement {
    sid       = "CloudWatchAlarmsPublish"
    actions   = ["kms:GenerateDataKey*", "kms:Decrypt"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
  }
}

resource "aws_sns_topic_subscription" "alarm_email" {
  count     = var.alarm_email == null ? 0 : 1
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

module "endpoint" {
  source = "../modules/endpoint"
  count  = var.route53_zone_id == null ? 0 : 1

  zone_id     = var.route53_zone_id
  domain      = var.domain
  lb_dns_name = module.cluster.nlb_dns_name
  lb_zone_id  = module.cluster.nlb_zone_id
}
