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
  description = "AMI built by packer/ (tribune binaries, hardened units, boot-time config renderer)."
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

variable "tls_secret_arn" {
  description = "ARN of the Secrets Manager secret named tribune/<name>/tls holding the TLS material (JSON: ca_pem, cert_pem, key_pem). Nodes fetch it at boot by that name."
  type        = string
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:tribune/[a-z0-9-]+/tls-[A-Za-z0-9]{6}$", var.tls_secret_arn))
    error_message = "tls_secret_arn must be the full ARN of a secret named tribune/<cluster>/tls (including the 6-character suffix Secrets Manager adds)."
  }
}

variable "tls_secret_kms_key_arn" {
  description = "Customer-managed KMS key the TLS secret is encrypted with. null: the secret uses the AWS-managed key, and no kms:Decrypt grant is needed."
  type        = string
  default     = null
  validation {
    condition     = var.tls_secret_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]+$", coalesce(var.tls_secret_kms_key_arn, "x")))
    error_message = "tls_secret_kms_key_arn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>) or null."
  }
}

variable "root_volume_size_gb" {
  description = "Size of the encrypted gp3 root volume (binaries, logs and, later, the JetStream store)."
  type        = number
  default     = 20
  validation {
    condition     = var.root_volume_size_gb >= 8 && var.root_volume_size_gb <= 16384
    error_message = "root_volume_size_gb must be between 8 and 16384."
  }
}

variable "ebs_kms_key_arn" {
  description = "KMS key for the root volumes. null: the account's default EBS key (aws/ebs)."
  type        = string
  default     = null
}

variable "detailed_monitoring" {
  description = "1-minute CloudWatch metrics for the brokers. false only for LocalStack, which does not implement MonitorInstances."
  type        = bool
  default     = true
}

variable "attach_instance_profile" {
  description = "Attach the instance profile to the brokers. Always true on AWS (discovery and the TLS secret need it); false only for LocalStack 2026.x, whose EC2 mock cannot see instance profiles created in its IAM (RunInstances answers NoSuchEntity)."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags added to every resource of this module."
  type        = map(string)
  default     = {}
}
