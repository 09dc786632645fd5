variable "region" {
  description = "AWS region of the cluster."
  type        = string
  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as eu-west-1."
  }
}

variable "cluster_name" {
  description = "Cluster name (NATS cluster name, discovery tag value, resource prefix). The TLS secret must be named tribune/<cluster_name>/tls."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.cluster_name))
    error_message = "cluster_name must be 3-32 characters of lower-case letters, digits and '-', starting with a letter."
  }
}

variable "availability_zones" {
  description = "The three AZs of the three brokers, e.g. [\"eu-west-1a\", \"eu-west-1b\", \"eu-west-1c\"]. Explicit, so the placement never moves when AWS adds a zone."
  type        = list(string)
  validation {
    condition     = length(distinct(var.availability_zones)) == 3 && alltrue([for az in var.availability_zones : startswith(az, var.region)])
    error_message = "availability_zones must be three distinct zones of var.region."
  }
}

variable "vpc_cidr" {
  description = "IPv4 CIDR of the cluster's VPC."
  type        = string
  default     = "10.42.0.0/16"
}

variable "ami_id" {
  description = "AMI to launch. null: the newest AMI of this account named tribune-* (what `make ami` builds)."
  type        = string
  default     = null
  validation {
    condition     = var.ami_id == null || can(regex("^ami-[0-9a-f]+$", coalesce(var.ami_id, "x")))
    error_message = "ami_id must be null or look like ami-0123abcd."
  }
}

variable "instance_type" {
  description = "EC2 instance type of the brokers (x86_64: the AMI `make ami` builds is x86_64)."
  type        = string
  default     = "c7i.large"
}

variable "key_name" {
  description = "EC2 key pair for SSH (Ansible). null: none."
  type        = string
  default     = null
}

variable "client_cidrs" {
  description = "CIDRs allowed on the client port 4222."
  type        = list(string)
}

variable "admin_cidrs" {
  description = "CIDRs allowed on monitoring 8222 and SSH 22 (operators, Ansible). Never 0.0.0.0/0."
  type        = list(string)
}

variable "bridge_mqtt_cidrs" {
  description = "CIDRs of the MQTT provider tribune-bridge reads from (egress on the port of bridge_mqtt_url). Empty: none."
  type        = list(string)
  default     = []
}

variable "bridge_mqtt_url" {
  description = "The bridge's mqtt.url: mqtts://host[:port] (egress 8883 by default) or wss://host[:port][/path] (443 by default)."
  type        = string
  default     = "mqtts://mqtt.thesports.com:8883"
}

variable "tls_secret_kms_key_arn" {
  description = "Customer-managed KMS key of the TLS secret, if it has one (grants kms:Decrypt via Secrets Manager only)."
  type        = string
  default     = null
}

variable "ebs_kms_key_arn" {
  description = "KMS key for the brokers' root volumes. null: the account's default EBS key."
  type        = string
  default     = null
}

variable "route53_zone_id" {
  description = "Hosted zone for nats.<domain>. null (with domain null): no DNS record."
  type        = string
  default     = null
}

variable "domain" {
  description = "Domain of route53_zone_id; the record is nats.<domain>."
  type        = string
  default     = null
  validation {
    condition     = var.domain == null || can(regex("^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$", coalesce(var.domain, "x")))
    error_message = "domain must be null or a lower-case DNS name without a trailing dot."
  }
}

variable "flow_log_retention_days" {
  description = "Days to keep VPC flow logs."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags for every resource (added through the provider's default_tags)."
  type        = map(string)
  default     = {}
}
