variable "region" {
  type        = string
  description = "Region to build the AMI in (and where it is registered)."
  default     = "eu-west-1"
}

variable "instance_type" {
  type        = string
  description = "Builder instance type (x86_64, like the release binaries)."
  default     = "c7i.large"
}

variable "bin_dir" {
  type        = string
  description = "Directory with the release binaries tribune-broker, tribune-auth, tribune-bridge (x86_64 Linux, glibc <= Debian 12's). Empty: <repo>/target/release."
  default     = ""
}

variable "version" {
  type        = string
  description = "Version label for the AMI name and tags, e.g. the git commit."
  default     = "dev"
}

variable "kms_key_id" {
  type        = string
  description = "KMS key for the AMI's encrypted root snapshot. Empty: the account's default EBS key."
  default     = ""
}

variable "ami_users" {
  type        = list(string)
  description = "Other AWS account IDs allowed to launch the AMI (with a CMK they also need key grants)."
  default     = []
}

variable "subnet_id" {
  type        = string
  description = "Subnet for the builder. Empty: the default VPC's."
  default     = ""
}
