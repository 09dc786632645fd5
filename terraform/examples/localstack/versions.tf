terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }

  # Local state; the tests pass -backend-config=path=<temp dir>/terraform.tfstate.
  backend "local" {}
}
