# Every service the modules use, pointed at LocalStack on the host.
provider "aws" {
  region                      = var.region
  access_key                  = "test"
  secret_key                  = "test"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_requesting_account_id  = false # LocalStack's STS answers; the modules need the account ID
  skip_region_validation      = true

  endpoints {
    ec2            = var.localstack_endpoint
    iam            = var.localstack_endpoint
    kms            = var.localstack_endpoint
    logs           = var.localstack_endpoint
    route53        = var.localstack_endpoint
    secretsmanager = var.localstack_endpoint
    sts            = var.localstack_endpoint
  }

  default_tags {
    tags = {
      "tribune:managed-by" = "terraform"
      "tribune:stack"      = var.cluster_name
    }
  }
}
