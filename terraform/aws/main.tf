# Tribune on AWS: VPC in three AZs, three brokers, optional nats.<domain>.
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

# Created out of band (it holds a private key, which must not pass through
# Terraform state); see README "Deploying to AWS". Looked up by the name
# the nodes use, so a plan fails early and clearly if it is missing.
data "aws_secretsmanager_secret" "tls" {
  name = "tribune/${var.cluster_name}/tls"
}

locals {
  ami_id = var.ami_id != null ? var.ami_id : data.aws_ami.tribune[0].id
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

  name                   = var.cluster_name
  vpc_id                 = module.network.vpc_id
  subnet_ids             = module.network.subnet_ids
  ami_id                 = local.ami_id
  instance_type          = var.instance_type
  key_name               = var.key_name
  client_cidrs           = var.client_cidrs
  admin_cidrs            = var.admin_cidrs
  bridge_mqtt_cidrs      = var.bridge_mqtt_cidrs
  bridge_mqtt_url        = var.bridge_mqtt_url
  tls_secret_arn         = data.aws_secretsmanager_secret.tls.arn
  tls_secret_kms_key_arn = var.tls_secret_kms_key_arn
  ebs_kms_key_arn        = var.ebs_kms_key_arn
}

module "endpoint" {
  source = "../modules/endpoint"
  count  = var.route53_zone_id == null ? 0 : 1

  zone_id = var.route53_zone_id
  domain  = var.domain
  ips     = values(module.cluster.public_ips)
}
