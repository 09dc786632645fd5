variable "region" {
  description = "AWS region of the cluster."
  type        = string
  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as eu-west-1."
  }
}

variable "cluster_name" {
  description = "Cluster name (NATS cluster name, discovery tag value, resource prefix). `make secrets` creates the secrets tribune/<cluster_name>/* and the KMS key alias/tribune-<cluster_name> the nodes use."
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
  description = "EC2 instance type of the brokers, of the AMI's architecture: x86_64 (make ami's default) or arm64 (make ami AMI_ARCH=arm64, e.g. c7g.large)."
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

variable "ebs_kms_key_arn" {
  description = "KMS key for the brokers' root volumes. null: the account's default EBS key."
  type        = string
  default     = null
}

variable "data_volume_size_gb" {
  description = "Size of each broker's JetStream data volume (encrypted gp3, kept across instance replacement; growing it is done in place)."
  type        = number
  default     = 100
}

variable "data_volume_snapshot_ids" {
  description = "Restore only (README \"Restore JetStream from snapshots\"): per availability zone, the snapshot a data volume is created from when it is replaced with terraform apply -replace."
  type        = map(string)
  default     = {}
}

variable "data_snapshot_retain" {
  description = "Scheduled snapshots of each data volume to keep; 0 takes none."
  type        = number
  default     = 14
}

variable "data_snapshot_interval_hours" {
  description = "Hours between scheduled snapshots of the data volumes (1, 2, 3, 4, 6, 8, 12 or 24)."
  type        = number
  default     = 12
}

variable "nlb_deletion_protection" {
  description = "Deletion protection on the client NLB. Set false and apply before make destroy (README \"Destroy\")."
  type        = bool
  default     = true
}

variable "route53_zone_id" {
  description = "Hosted zone for nats.<domain> (an alias of the client NLB, which the brokers also advertise to clients). null (with domain null): no DNS record; clients use the NLB's DNS name or the Elastic IPs."
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

variable "alarm_email" {
  description = "An address the cluster's CloudWatch alarms are mailed to (SNS asks it to confirm first). null: subscribe to the alarm_topic_arn output yourself."
  type        = string
  default     = null
  validation {
    condition     = var.alarm_email == null || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alarm_email))
    error_message = "alarm_email must be an e-mail address."
  }
}

variable "tags" {
  description = "Tags for every resource (added through the provider's default_tags)."
  type        = map(string)
  default     = {}
}
