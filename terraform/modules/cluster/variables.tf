variable "name" {
  description = "Cluster name: the NATS cluster name, the value of the discovery tag and the prefix of resource names."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3-32 characters of lower-case letters, digits and '-', starting with a letter."
  }
}

variable "vpc_id" {
  description = "VPC the cluster runs in (network module output vpc_id)."
  type        = string
  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123abcd."
  }
}

variable "subnet_ids" {
  description = "Map of availability zone => subnet ID; one broker per entry (network module output subnet_ids)."
  type        = map(string)
  validation {
    condition     = length(var.subnet_ids) == 3
    error_message = "subnet_ids must have exactly three entries (three AZs, one broker each)."
  }
  validation {
    condition     = alltrue([for id in values(var.subnet_ids) : can(regex("^subnet-[0-9a-f]+$", id))])
    error_message = "every value of subnet_ids must look like subnet-0123abcd."
  }
}

variable "ami_id" {
  description = "AMI built by packer/ (tribune binaries, hardened units, boot-time config renderer) that new nodes start with. Only the first value counts: later versions move node by node with make upgrade (see node_ami in nodes.tf)."
  type        = string
  validation {
    condition     = can(regex("^ami-[0-9a-f]+$", var.ami_id))
    error_message = "ami_id must look like ami-0123abcd (see `make ami`)."
  }
}

variable "instance_type" {
  description = "EC2 instance type of the brokers."
  type        = string
  default     = "c7i.large"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.instance_type))
    error_message = "instance_type must look like c7g.large."
  }
}

variable "key_name" {
  description = "EC2 key pair for SSH (Ansible). null: no key pair; use EC2 Instance Connect or SSM instead."
  type        = string
  default     = null
}

variable "client_cidrs" {
  description = "CIDRs allowed to connect to the NATS client port 4222 (TLS). May be 0.0.0.0/0 for public clients."
  type        = list(string)
  validation {
    condition     = length(var.client_cidrs) > 0 && alltrue([for c in var.client_cidrs : can(cidrhost(c, 0))])
    error_message = "client_cidrs must be a non-empty list of CIDR blocks."
  }
}

variable "admin_cidrs" {
  description = "CIDRs allowed to reach monitoring (8222) and SSH (22): the operators' and Ansible's addresses. Never the whole internet."
  type        = list(string)
  validation {
    condition     = length(var.admin_cidrs) > 0 && alltrue([for c in var.admin_cidrs : can(cidrhost(c, 0))])
    error_message = "admin_cidrs must be a non-empty list of CIDR blocks."
  }
  validation {
    condition     = alltrue([for c in var.admin_cidrs : tonumber(split("/", c)[1]) >= 8])
    error_message = "admin_cidrs may not contain 0.0.0.0/0, ::/0 or any block wider than /8: monitoring and SSH must not be open to the internet."
  }
}

variable "enable_ssh" {
  description = "Open port 22 from admin_cidrs, for Ansible (make upgrade)."
  type        = bool
  default     = true
}

variable "bridge_mqtt_cidrs" {
  description = "CIDRs of the MQTT provider that tribune-bridge connects to, on the port of bridge_mqtt_url. Empty: no bridge egress."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for c in var.bridge_mqtt_cidrs : can(cidrhost(c, 0))])
    error_message = "bridge_mqtt_cidrs must be CIDR blocks."
  }
}

variable "bridge_mqtt_url" {
  description = "The bridge's mqtt.url, for the egress rule's port: mqtts://host[:port] (default port 8883) or wss://host[:port][/path] (MQTT over WebSocket, default 443). TLS only: the provider is on the internet."
  type        = string
  default     = "mqtts://mqtt.thesports.com:8883"
  validation {
    condition = (
      can(regex("(?i)^(mqtts|ssl|wss)://(?:\\[[0-9a-f:.]+\\]|[a-z0-9._-]+)(?::([0-9]{1,5}))?(?:/[^?#\\s]*)?$", var.bridge_mqtt_url))
      && try(tonumber(regex("(?i)^(mqtts|ssl|wss)://(?:\\[[0-9a-f:.]+\\]|[a-z0-9._-]+)(?::([0-9]{1,5}))?(?:/[^?#\\s]*)?$", var.bridge_mqtt_url)[1]) <= 65535, true)
    )
    error_message = "bridge_mqtt_url must be mqtts://host[:port] or wss://host[:port][/path] (TLS; no credentials or query in the URL)."
  }
}

variable "discovery_tag_key" {
  description = "Tag key the brokers' EC2 discovery filters on; its value is the cluster name."
  type        = string
  default     = "tribune:cluster"
  validation {
    condition     = length(var.discovery_tag_key) > 0 && length(var.discovery_tag_key) <= 128 && !startswith(var.discovery_tag_key, "aws:")
    error_message = "discovery_tag_key must be 1-128 characters and not start with aws:."
  }
}

variable "secrets_kms_key_arn" {
  description = "ARN of the customer-managed KMS key the cluster's secrets (tribune/<name>/*, made by `make secrets`) are encrypted with: the key behind alias/tribune-<name>. The instance role may decrypt with it through Secrets Manager only, and only those secrets."
  type        = string
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]+$", var.secrets_kms_key_arn))
    error_message = "secrets_kms_key_arn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>), not an alias."
  }
}

variable "root_volume_size_gb" {
  description = "Size of the encrypted gp3 root volume (binaries, logs; JetStream is on the data volume)."
  type        = number
  default     = 20
  validation {
    condition     = var.root_volume_size_gb >= 8 && var.root_volume_size_gb <= 16384
    error_message = "root_volume_size_gb must be between 8 and 16384."
  }
}

variable "ebs_kms_key_arn" {
  description = "KMS key for the root and data volumes. null: the account's default EBS key (aws/ebs). A customer-managed key's policy must let the Auto Scaling service-linked role (AWSServiceRoleForAutoScaling) use it, or launches fail; the brokers' role gets what attaching the data volume needs."
  type        = string
  default     = null
}

variable "detailed_monitoring" {
  description = "1-minute CloudWatch metrics for the brokers. false only for LocalStack, which does not implement MonitorInstances."
  type        = bool
  default     = true
}

variable "attach_instance_profile" {
  description = "Attach the instance profile to the brokers. Always true on AWS (discovery and the secrets need it); false only for LocalStack 2026.x, whose EC2 mock cannot see instance profiles created in its IAM (RunInstances answers NoSuchEntity)."
  type        = bool
  default     = true
}

variable "alarm_actions" {
  description = "ARNs notified when a CloudWatch alarm of the cluster changes state (alarms.tf), e.g. an SNS topic. Empty: the alarms only show in the console."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags added to every resource of this module."
  type        = map(string)
  default     = {}
}

variable "root_device_name" {
  description = "Root device name of ami_id, where the launch template sets the root volume's size and encryption. /dev/xvda for the Debian 12 images `make ami` builds on; a wrong name adds a second volume instead."
  type        = string
  default     = "/dev/xvda"
  validation {
    condition     = can(regex("^/dev/[a-z0-9]+$", var.root_device_name))
    error_message = "root_device_name must look like /dev/xvda."
  }
}

variable "data_volume_size_gb" {
  description = "Size of each node's JetStream data volume (encrypted gp3, kept across instance replacement). Growing it is done in place; the node grows the filesystem at its next boot."
  type        = number
  default     = 100
  validation {
    condition     = var.data_volume_size_gb >= 1 && var.data_volume_size_gb <= 16384
    error_message = "data_volume_size_gb must be between 1 and 16384."
  }
}

variable "data_volume_iops" {
  description = "Provisioned IOPS of each data volume (gp3: 3000 included, up to 16000)."
  type        = number
  default     = 3000
  validation {
    condition     = var.data_volume_iops >= 3000 && var.data_volume_iops <= 16000
    error_message = "data_volume_iops must be between 3000 and 16000 (gp3)."
  }
}

variable "data_volume_throughput" {
  description = "Provisioned throughput of each data volume in MiB/s (gp3: 125 included, up to 1000)."
  type        = number
  default     = 125
  validation {
    condition     = var.data_volume_throughput >= 125 && var.data_volume_throughput <= 1000
    error_message = "data_volume_throughput must be between 125 and 1000 (gp3)."
  }
}

variable "data_volume_final_snapshot" {
  description = "Snapshot a data volume before Terraform deletes it. true everywhere but throw-away test stacks."
  type        = bool
  default     = true
}

variable "data_volume_snapshot_ids" {
  description = "Restore only: per availability zone, the EBS snapshot a data volume is created from when it is next created (terraform apply -replace, README \"Restore JetStream from snapshots\"). Changing it alone replaces nothing."
  type        = map(string)
  default     = {}
  validation {
    condition     = alltrue([for id in values(var.data_volume_snapshot_ids) : can(regex("^snap-[0-9a-f]+$", id))])
    error_message = "data_volume_snapshot_ids values must look like snap-0123abcd."
  }
}

variable "data_snapshot_retain" {
  description = "Scheduled snapshots of each data volume to keep (Data Lifecycle Manager); 0 takes none."
  type        = number
  default     = 14
  validation {
    condition     = var.data_snapshot_retain >= 0 && var.data_snapshot_retain <= 1000
    error_message = "data_snapshot_retain must be between 0 and 1000."
  }
}

variable "data_snapshot_interval_hours" {
  description = "Hours between scheduled snapshots (Data Lifecycle Manager allows 1, 2, 3, 4, 6, 8, 12 or 24): what a restore can lose at most."
  type        = number
  default     = 12
  validation {
    condition     = contains([1, 2, 3, 4, 6, 8, 12, 24], var.data_snapshot_interval_hours)
    error_message = "data_snapshot_interval_hours must be 1, 2, 3, 4, 6, 8, 12 or 24."
  }
}

variable "client_hostname" {
  description = "The DNS name clients use (nats.<domain>, pointing at the NLB). The brokers advertise it in INFO (connect_urls, ws_connect_urls), so reconnects also go through the NLB, and take client traffic only from the NLB. null: each broker advertises its Elastic IP and also takes clients directly from client_cidrs (the TLS certificate then needs the EIPs as SANs)."
  type        = string
  default     = null
  validation {
    condition     = var.client_hostname == null || can(regex("^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$", coalesce(var.client_hostname, "x")))
    error_message = "client_hostname must be null or a lower-case DNS name such as nats.example.com."
  }
}

variable "nlb_deletion_protection" {
  description = "Deletion protection on the client NLB (its DNS name is what nats.<domain> points at). false only for throw-away test stacks."
  type        = bool
  default     = true
}

variable "health_check_grace_period" {
  description = "Seconds after launch before the ASG acts on a replacement's EC2 status checks."
  type        = number
  default     = 300
  validation {
    condition     = var.health_check_grace_period >= 0 && var.health_check_grace_period <= 7200
    error_message = "health_check_grace_period must be between 0 and 7200 seconds."
  }
}

variable "wait_for_capacity_timeout" {
  description = "How long terraform apply waits for each ASG's instance to be InService (a Go duration such as 10m; 0 does not wait)."
  type        = string
  default     = "10m"
}
