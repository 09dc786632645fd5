variable "localstack_endpoint" {
  description = "LocalStack gateway URL."
  type        = string
  default     = "http://127.0.0.1:4566"
  validation {
    condition     = can(regex("^https?://", var.localstack_endpoint))
    error_message = "localstack_endpoint must be an http:// or https:// URL."
  }
}

variable "moto_endpoint" {
  description = "moto server URL for EC2, Auto Scaling and ELBv2 (started with MOTO_ACCOUNT_ID=000000000000, LocalStack's account)."
  type        = string
  default     = "http://127.0.0.1:5000"
  validation {
    condition     = can(regex("^https?://", var.moto_endpoint))
    error_message = "moto_endpoint must be an http:// or https:// URL."
  }
}

variable "region" {
  description = "Region to create the resources in."
  type        = string
  default     = "us-east-1"
}

variable "cluster_name" {
  description = "Cluster name; tests use a unique one per run so a long-lived LocalStack is shared safely."
  type        = string
  default     = "tribune-example"
}

variable "domain" {
  description = "Domain of the hosted zone the example creates for nats.<domain>."
  type        = string
  default     = "tribune.test"
}
