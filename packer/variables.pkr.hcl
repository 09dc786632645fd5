variable "region" {
  type        = string
  description = "Region to build the AMI in (and where it is registered)."
  default     = "eu-west-1"
}

variable "arch" {
  type        = string
  description = "The AMI's architecture, as EC2 names it: x86_64 or arm64. The binaries in bin_dir must be built for it (make ami does)."
  default     = "x86_64"
  validation {
    condition     = var.arch == "x86_64" || var.arch == "arm64"
    error_message = "The arch variable must be x86_64 or arm64."
  }
}

variable "instance_type" {
  type        = string
  description = "Builder instance type, of var.arch. Empty: c7i.large (x86_64) or c7g.large (arm64)."
  default     = ""
}

variable "bin_dir" {
  type        = string
  description = "Directory with the release binaries tribune-broker, tribune-auth, tribune-bridge: static Linux executables for var.arch (make ami builds them for the musl target)."
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

variable "manifest" {
  type        = string
  description = "Where the manifest post-processor writes the build's AMI ID. Empty: manifest.json in the template directory."
  default     = ""
}
