variable "localstack_endpoint" {
  description = "LocalStack gateway URL."
  type        = string
  default     = "http://127.0.0.1:4566"
  validation {
    condition     = can(regex("^https?://", var.localstack_endpoint))
    error_message = "localstack_endpoint must be an http:// or https:// URL."
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

variable "tls_secret_json" {
  description = "JSON of the TLS secret ({\"ca_pem\",\"cert_pem\",\"key_pem\"}). Only for LocalStack: on AWS the secret is created out of band so the key never enters Terraform state."
  type        = string
  sensitive   = true
  validation {
    condition     = can(jsondecode(var.tls_secret_json).ca_pem) && can(jsondecode(var.tls_secret_json).cert_pem) && can(jsondecode(var.tls_secret_json).key_pem)
    error_message = "tls_secret_json must be a JSON object with ca_pem, cert_pem and key_pem."
  }
}

variable "domain" {
  description = "Domain of the hosted zone the example creates for nats.<domain>."
  type        = string
  default     = "tribune.test"
}
