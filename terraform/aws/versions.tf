terraform {
  required_version = ">= 1.9" # cross-variable validation (availability_zones vs region)

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }

  # Remote state in S3 with S3-native locking. Partial configuration: the
  # bucket, key and region come from the file in TF_BACKEND_CONFIG
  # (`make plan` refuses to run without it), e.g.
  #   bucket       = "acme-terraform-state"
  #   key          = "tribune/prod.tfstate"
  #   region       = "eu-west-1"
  #   encrypt      = true
  #   use_lockfile = true
  backend "s3" {}
}
