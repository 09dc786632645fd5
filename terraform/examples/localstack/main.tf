# The AWS stack (modules network, cluster, endpoint) against LocalStack.
#
# Differences from ../../aws, each because LocalStack or the test needs it:
# - the hosted zone is created here (on AWS it exists beforehand);
# - the AMI is one the EC2 mock ships (nothing boots there, so the Packer
#   image could not be exercised anyway);
# - EC2, Auto Scaling and Elastic Load Balancing go to moto (providers.tf):
#   LocalStack's community edition serves no Auto Scaling and no ELBv2, and
#   an Auto Scaling group must find its subnets, launch template and target
#   groups in the same backend, so EC2 goes along;
# - nothing is protected against deletion and the data volumes leave no
#   final snapshot, so the test's destroy cleans up completely;
# - local state in a directory the test chooses.
# As on AWS, the secrets and their KMS key come from `make secrets`
# (terraform/bootstrap/bootstrap_secrets.py), which the test runs against
# LocalStack first; Terraform only looks them up.

data "aws_ami" "stand_in" {
  owners      = ["amazon", "099720109477", "self"]
  most_recent = true
  filter {
    name   = "name"
    values = ["ubuntu/images/hvm-ssd/ubuntu-*"]
  }
}

data "aws_kms_alias" "secrets" {
  name = "alias/tribune-${var.cluster_name}"
}

data "aws_secretsmanager_secret" "cluster" {
  for_each = toset(["tls", "ca", "nkeys", "callout", "provider", "web-idp"])
  name     = "tribune/${var.cluster_name}/${each.key}"
}

resource "aws_route53_zone" "test" {
  #checkov:skip=CKV2_AWS_38:DNSSEC signing needs a KMS key in us-east-1 and a registrar DS record; this is a throw-away zone inside LocalStack.
  #checkov:skip=CKV2_AWS_39:DNS query logging needs a CloudWatch log group in us-east-1 with a resource policy; this is a throw-away zone inside LocalStack.
  name          = var.domain
  force_destroy = true
}

# A customer-managed key for the brokers' volumes, so the module's CMK path
# (launch template, data volumes, the boot policy's KMS grants) is applied
# and checked too.
data "aws_caller_identity" "current" {}

data "aws_iam_policy_document" "ebs_key" {
  #checkov:skip=CKV_AWS_111:KMS key policy: resources "*" means this key only, and the one grant is AWS's default statement for the account root, which keeps the key administrable through IAM.
  #checkov:skip=CKV_AWS_356:KMS key policy, where the only valid resource is "*" (the key the policy is attached to).
  #checkov:skip=CKV_AWS_109:KMS key policy: kms:* for the account root is AWS's default statement; without it a wrong policy locks everyone out of the key.
  statement {
    sid       = "AccountAdministration"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
}

resource "aws_kms_key" "ebs" {
  description             = "${var.cluster_name} broker volumes (LocalStack test)"
  enable_key_rotation     = true
  deletion_window_in_days = 7
  policy                  = data.aws_iam_policy_document.ebs_key.json
}

module "network" {
  source = "../../modules/network"

  name               = var.cluster_name
  vpc_cidr           = "10.77.0.0/16"
  availability_zones = ["${var.region}a", "${var.region}b", "${var.region}c"]
}

module "cluster" {
  source = "../../modules/cluster"

  name                = var.cluster_name
  vpc_id              = module.network.vpc_id
  subnet_ids          = module.network.subnet_ids
  ami_id              = data.aws_ami.stand_in.id
  instance_type       = "t3.micro"
  client_cidrs        = ["0.0.0.0/0"]
  admin_cidrs         = ["203.0.113.0/24"]
  secrets_kms_key_arn = data.aws_kms_alias.secrets.target_key_arn

  # The brokers advertise nats.<domain> (the NLB) to clients.
  client_hostname = "nats.${var.domain}"
  # The stand-in AMI's root device (Ubuntu: /dev/sda1, not Debian's /dev/xvda).
  root_device_name           = data.aws_ami.stand_in.root_device_name
  data_volume_size_gb        = 10
  ebs_kms_key_arn            = aws_kms_key.ebs.arn
  data_volume_final_snapshot = false
  # Neither LocalStack's community edition nor moto serves Data Lifecycle
  # Manager; test_static plans terraform/aws with the schedule on.
  data_snapshot_retain    = 0
  nlb_deletion_protection = false

  # The bridge reads the provider over MQTT over WebSocket (wss://): its
  # egress rule must open 443 to the provider (test_security_group_rules).
  bridge_mqtt_cidrs = ["192.0.2.10/32"]
  bridge_mqtt_url   = "wss://mqtt.example.com/mqtt"

  # The instance profile lives in LocalStack's IAM, which the EC2 mock's
  # RunInstances (moto here; LocalStack's is moto-based too) does not
  # consult: attaching one fails with NoSuchEntity. The role, policies and
  # profile are still created and checked by terraform/tests; only the
  # launch template's reference to the profile is left out here.
  attach_instance_profile = false
  # Detailed monitoring off, as LocalStack answered MonitorInstances with 501
  # "not yet implemented" (and the mock has no CloudWatch metrics anyway).
  detailed_monitoring = false
}

module "endpoint" {
  source = "../../modules/endpoint"

  zone_id     = aws_route53_zone.test.zone_id
  domain      = var.domain
  lb_dns_name = module.cluster.nlb_dns_name
  lb_zone_id  = module.cluster.nlb_zone_id
}
