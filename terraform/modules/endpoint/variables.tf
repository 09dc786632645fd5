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

variable "lb_dns_name" {
  description = "DNS name of the cluster's client NLB (the cluster module's nlb_dns_name)."
  type        = string
  validation {
    condition     = length(var.lb_dns_name) > 0
    error_message = "lb_dns_name must be the NLB's DNS name."
  }
}

variable "lb_zone_id" {
  description = "Route53 zone ID of the NLB (the cluster module's nlb_zone_id)."
  type        = string
  validation {
    condition     = length(var.lb_zone_id) > 0
    error_message = "lb_zone_id must be the NLB's canonical hosted zone ID."
  }
}
