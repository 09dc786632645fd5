# The brokers' instance role: discovery, the cluster's secrets (all but the
# CA's key) and the alarms' metrics, nothing else.

locals {
  # The secrets `make secrets` creates, tribune/<name>/<kind>, live in the
  # key's account and region (Secrets Manager only uses a key of its own
  # region). Their ARNs end in -<6 random characters>, hence the wildcards.
  kms_arn_parts     = split(":", var.secrets_kms_key_arn)
  secret_arn_prefix = "arn:${local.kms_arn_parts[1]}:secretsmanager:${local.kms_arn_parts[3]}:${local.kms_arn_parts[4]}:secret:tribune/${var.name}/"
  ca_secret_arn     = "${local.secret_arn_prefix}ca-??????"
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  name_prefix        = "${var.name}-broker-"
  description        = "Tribune brokers of cluster ${var.name}: EC2 discovery and the cluster secrets"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

resource "aws_iam_instance_profile" "node" {
  name_prefix = "${var.name}-broker-"
  role        = aws_iam_role.node.name
  tags        = var.tags
}

data "aws_iam_policy_document" "node" {
  # Peer discovery. ec2:DescribeInstances supports no resource-level
  # permissions (AWS only accepts "*" for it), so it cannot be narrowed to
  # the cluster's instances; the region condition at least keeps it to the
  # region the cluster runs in. It is read-only.
  statement {
    sid       = "DiscoverPeers"
    actions   = ["ec2:DescribeInstances"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "aws:RequestedRegion"
      values   = [data.aws_region.current.name]
    }
  }

  # The cluster's secrets (tls, nkeys, callout, provider, web-idp), read by
  # the renderer at boot and on rotation.
  statement {
    sid       = "ReadClusterSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = ["${local.secret_arn_prefix}*"]
  }

  # Except the CA: with its key a node could mint certificates every other
  # node accepts on the route port. An explicit Deny beats any Allow,
  # including one added to this role later.
  statement {
    sid       = "DenyClusterCa"
    effect    = "Deny"
    actions   = ["secretsmanager:*"]
    resources = [local.ca_secret_arn]
  }

  # Decrypting with the cluster key only through Secrets Manager (no direct
  # kms:Decrypt calls) and only for this cluster's secrets (Secrets Manager
  # passes the secret's ARN as encryption context).
  statement {
    sid       = "DecryptClusterSecrets"
    actions   = ["kms:Decrypt"]
    resources = [var.secrets_kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${data.aws_region.current.name}.amazonaws.com"]
    }
    condition {
      test     = "StringLike"
      variable = "kms:EncryptionContext:SecretARN"
      values   = ["${local.secret_arn_prefix}*"]
    }
  }

  # What the CloudWatch alarms watch (tribune-cloudwatch-metrics): into
  # the Tribune namespace only. PutMetricData supports no resource-level
  # permissions; the namespace condition is how it is narrowed.
  statement {
    sid       = "PublishAlarmMetrics"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = [local.metrics_namespace]
    }
  }

  # The CA's key again, at the KMS layer.
  statement {
    sid       = "DenyDecryptClusterCa"
    effect    = "Deny"
    actions   = ["kms:Decrypt"]
    resources = [var.secrets_kms_key_arn]
    condition {
      test     = "StringLike"
      variable = "kms:EncryptionContext:SecretARN"
      values   = [local.ca_secret_arn]
    }
  }
}

resource "aws_iam_role_policy" "node" {
  name   = "tribune-broker"
  role   = aws_iam_role.node.id
  policy = data.aws_iam_policy_document.node.json

  lifecycle {
    precondition {
      condition     = local.kms_arn_parts[3] == data.aws_region.current.name
      error_message = "secrets_kms_key_arn is a key in ${local.kms_arn_parts[3]}, but the cluster runs in ${data.aws_region.current.name}: run `make secrets` in the cluster's region."
    }
  }
}

# --- Boot: this AZ's data volume and Elastic IP (attach-data-volume) ------------
#
# A separate policy (not more statements in the one above) so it can be read,
# and changed, on its own. Write access names the exact volumes and Elastic
# IPs Terraform created, and only towards instances carrying the cluster's
# discovery tag; an EBS volume attaches only within its AZ, where the ASG
# runs a single broker, so in practice a node can take only its own.

locals {
  # From an ARN the module creates anyway: no aws_caller_identity lookup, so
  # planning this module needs no AWS credentials.
  account_id           = split(":", aws_iam_role.node.arn)[4]
  cluster_instance_arn = "arn:${data.aws_partition.current.partition}:ec2:${data.aws_region.current.name}:${local.account_id}:instance/*"
}

data "aws_iam_policy_document" "boot" {
  # Finding the volume and address by tag, and the instance that holds the
  # volume. Describe* calls support no resource-level permissions.
  statement {
    sid       = "FindDataVolumeAndAddress"
    actions   = ["ec2:DescribeVolumes", "ec2:DescribeAddresses", "ec2:DescribeInstances"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "aws:RequestedRegion"
      values   = [data.aws_region.current.name]
    }
  }

  # Attach, and force-detach from a terminated predecessor: these volumes...
  statement {
    sid       = "AttachDataVolumes"
    actions   = ["ec2:AttachVolume", "ec2:DetachVolume"]
    resources = [for v in aws_ebs_volume.data : v.arn]
  }

  # ...to and from the cluster's instances only.
  statement {
    sid       = "AttachToClusterInstances"
    actions   = ["ec2:AttachVolume", "ec2:DetachVolume"]
    resources = [local.cluster_instance_arn]
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/${var.discovery_tag_key}"
      values   = [var.name]
    }
  }

  # The cluster's Elastic IPs...
  statement {
    sid       = "AssociateClusterAddresses"
    actions   = ["ec2:AssociateAddress"]
    resources = [for e in aws_eip.node : e.arn]
  }

  # ...onto the cluster's instances only.
  statement {
    sid       = "AssociateToClusterInstances"
    actions   = ["ec2:AssociateAddress"]
    resources = [local.cluster_instance_arn]
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/${var.discovery_tag_key}"
      values   = [var.name]
    }
  }

  # Attaching a volume encrypted with a customer-managed key makes EC2 create
  # a grant and decrypt the volume's data key on the caller's behalf, so the
  # caller needs both, through EC2 only. (The AWS-managed aws/ebs key allows
  # that to everyone in the account already.)
  dynamic "statement" {
    for_each = var.ebs_kms_key_arn == null ? [] : [var.ebs_kms_key_arn]
    content {
      sid       = "UseDataVolumeKeyViaEc2"
      actions   = ["kms:Decrypt", "kms:DescribeKey"]
      resources = [statement.value]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["ec2.${data.aws_region.current.name}.amazonaws.com"]
      }
    }
  }

  dynamic "statement" {
    for_each = var.ebs_kms_key_arn == null ? [] : [var.ebs_kms_key_arn]
    content {
      sid       = "GrantDataVolumeKeyToEc2"
      actions   = ["kms:CreateGrant"]
      resources = [statement.value]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["ec2.${data.aws_region.current.name}.amazonaws.com"]
      }
      condition {
        test     = "Bool"
        variable = "kms:GrantIsForAWSResource"
        values   = ["true"]
      }
    }
  }
}

resource "aws_iam_role_policy" "boot" {
  name   = "tribune-boot"
  role   = aws_iam_role.node.id
  policy = data.aws_iam_policy_document.boot.json
}
