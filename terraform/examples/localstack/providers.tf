# Every service the modules use, pointed at LocalStack on the host, except
# the three LocalStack's community edition cannot serve together (no Auto
# Scaling, no ELBv2): EC2, Auto Scaling and ELBv2 go to a moto server, and
# SSM with them (the nodes' AMI parameters are of type aws:ec2:image, which
# name AMIs that live on moto's EC2). Both run with account 000000000000,
# so ARNs agree across the two.
provider "aws" {
  region                      = var.region
  access_key                  = "test"
  secret_key                  = "test"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_requesting_account_id  = false # LocalStack's STS answers; the modules need the account ID
  skip_region_validation      = true

  endpoints {
    autoscaling    = var.moto_endpoint
    cloudwatch     = var.localstack_endpoint
    ec2            = var.moto_endpoint
    elbv2          = var.moto_endpoint
    iam            = var.localstack_endpoint
    kms            = var.localstack_endpoint
    logs           = var.localstack_endpoint
    route53        = var.localstack_endpoint
    secretsmanager = var.localstack_endpoint
    ssm            = var.moto_endpoint
    sts            = var.localstack_endpoint
  }

  default_tags {
    tags = {
      "tribune:managed-by" = "terraform"
      "tribune:stack"      = var.cluster_name
    }
  }
}
