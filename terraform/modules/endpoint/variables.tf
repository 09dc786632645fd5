variable "zone_id" {
  description = "Route53 hosted zone that holds domain."
  type        = string
  validation {
    condition     = can(regex("^[A-Z0-9]{8,32}$", var.zone_id))
    error_message = "zone_id must be a Route53 hosted zone ID such as Z0123456789ABC (without /hostedzone/)."
  }
}

variable "domain" {
  description = "Domain of the hosted zone; the record is <record_name>.<domain>."
  type        = string
  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$", var.domain))
    error_message = "domain must be a lower-case DNS name without a trailing dot, e.g. example.com."
  }
}

variable "record_name" {
  description = "Label of the record inside domain."
  type        = string
  default     = "nats"
  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]*[a-z0-9])?$", var.record_name))
    error_message = "record_name must be one DNS label, e.g. nats."
  }
}

variable "ips" {
  description = "Public IPs of the brokers (the cluster module's public_ips values)."
  type        = list(string)
  validation {
    condition     = length(var.ips) > 0 && alltrue([for ip in var.ips : can(cidrhost("${ip}/32", 0))])
    error_message = "ips must be a non-empty list of IPv4 addresses."
  }
}

variable "ttl" {
  description = "TTL of the record in seconds. Short, so clients stop resolving a replaced node soon."
  type        = number
  default     = 60
  validation {
    condition     = var.ttl >= 10 && var.ttl <= 86400
    error_message = "ttl must be between 10 and 86400 seconds."
  }
}
