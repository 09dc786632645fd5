# The AWS stack (modules network, cluster, endpoint) against LocalStack.
#
# Differences from ../../aws, each because LocalStack or the test needs it:
# - the TLS secret and the hosted zone are created here (on AWS both exist
#   beforehand);
# - the AMI is one LocalStack ships (EC2 there is a mock: nothing boots, so
#   the Packer image could not be exercised anyway);
# - local state in a directory the test chooses.

data "aws_ami" "stand_in" {
  owners      = ["amazon", "099720109477", "self"]
  most_recent = true
  filter {
    name   = "name"
    values = ["ubuntu/images/hvm-ssd/ubuntu-*"]
  }
}

resource "aws_secretsmanager_secret" "tls" {
  #checkov:skip=CKV_AWS_149:LocalStack-only test secret holding throw-away test certificates; the AWS root never creates the secret (see README).
  #checkov:skip=CKV2_AWS_57:Certificates are rotated by re-issuing them and rolling the cluster, not by a Secrets Manager rotation Lambda; and this is a LocalStack-only test secret.
  name                    = "tribune/${var.cluster_name}/tls"
  description             = "TLS material of Tribune cluster ${var.cluster_name} (LocalStack test)"
  recovery_window_in_days = 0 # so a test's destroy frees the name at once
}

resource "aws_secretsmanager_secret_version" "tls" {
  secret_id     = aws_secretsmanager_secret.tls.id
  secret_string = var.tls_secret_json
}

resource "aws_route53_zone" "test" {
  #checkov:skip=CKV2_AWS_38:DNSSEC signing needs a KMS key in us-east-1 and a registrar DS record; this is a throw-away zone inside LocalStack.
  #checkov:skip=CKV2_AWS_39:DNS query logging needs a CloudWatch log group in us-east-1 with a resource policy; this is a throw-away zone inside LocalStack.
  name          = var.domain
  force_destroy = true
}

module "network" {
  source = "../../modules/network"

  name               = var.cluster_name
  vpc_cidr           = "10.77.0.0/16"
  availability_zones = ["${var.region}a", "${var.region}b", "${var.region}c"]
}

module "cluster" {
  source = "../../modules/cluster"

  name           = var.cluster_name
  vpc_id         = module.network.vpc_id
  subnet_ids     = module.network.subnet_ids
  ami_id         = data.aws_ami.stand_in.id
  instance_type  = "t3.micro"
  client_cidrs   = ["0.0.0.0/0"]
  admin_cidrs    = ["203.0.113.0/24"]
  tls_secret_arn = aws_secretsmanager_secret.tls.arn

  # The bridge reads the provider over MQTT over WebSocket (wss://): its
  # egress rule must open 443 to the provider (test_security_group_rules).
  bridge_mqtt_cidrs = ["192.0.2.10/32"]
  bridge_mqtt_url   = "wss://mqtt.example.com/mqtt"

  # LocalStack 2026.3 keeps instance profiles in its own IAM store, which
  # its (moto-based) EC2 RunInstances does not consult: attaching one fails
  # with NoSuchEntity. The role, policy and profile are still created and
  # checked by terraform/tests; only the attachment is left out here.
  attach_instance_profile = false
  # LocalStack answers MonitorInstances with 501 "not yet implemented".
  detailed_monitoring = false

  depends_on = [aws_secretsmanager_secret_version.tls]
}

module "endpoint" {
  source = "../../modules/endpoint"

  zone_id = aws_route53_zone.test.zone_id
  domain  = var.domain
  ips     = values(module.cluster.public_ips)
}
