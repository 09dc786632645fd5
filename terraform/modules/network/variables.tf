variable "name" {
  description = "Prefix for every resource name and the Name tags (usually the cluster name)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3-32 characters of lower-case letters, digits and '-', starting with a letter."
  }
}

variable "vpc_cidr" {
  description = "IPv4 CIDR of the VPC. Each AZ gets one /24-or-larger subnet carved from it (newbits below)."
  type        = string
  default     = "10.42.0.0/16"
  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 24
    error_message = "vpc_cidr must be an IPv4 CIDR block of /24 or larger, e.g. 10.42.0.0/16."
  }
}

variable "subnet_newbits" {
  description = "Bits added to the VPC prefix for each subnet (16 + 8 = /24 subnets)."
  type        = number
  default     = 8
  validation {
    condition     = var.subnet_newbits >= 2 && var.subnet_newbits <= 12
    error_message = "subnet_newbits must be between 2 and 12 (room for at least three subnets)."
  }
}

variable "availability_zones" {
  description = "Exactly three availability zones, one subnet (and later one broker) in each."
  type        = list(string)
  validation {
    condition     = length(var.availability_zones) == 3 && length(distinct(var.availability_zones)) == 3
    error_message = "availability_zones must list three distinct zones: a 3-node cluster keeps quorum through the loss of one AZ only if every node is in its own."
  }
}

variable "flow_log_retention_days" {
  description = "Days to keep VPC flow logs. 365 or more satisfies most audit baselines."
  type        = number
  default     = 365
  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.flow_log_retention_days)
    error_message = "flow_log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}

variable "flow_log_traffic_type" {
  description = "Which traffic the flow log records: ACCEPT, REJECT or ALL."
  type        = string
  default     = "ALL"
  validation {
    condition     = contains(["ACCEPT", "REJECT", "ALL"], var.flow_log_traffic_type)
    error_message = "flow_log_traffic_type must be ACCEPT, REJECT or ALL."
  }
}

variable "tags" {
  description = "Tags added to every resource of this module."
  type        = map(string)
  default     = {}
}
