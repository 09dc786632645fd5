provider "aws" {
  region = var.region

  default_tags {
    tags = merge(var.tags, {
      "tribune:managed-by" = "terraform"
      "tribune:stack"      = var.cluster_name
    })
  }
}
