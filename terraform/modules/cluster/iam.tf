# The brokers' instance role: discovery and the TLS secret, nothing else.

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
  description        = "Tribune brokers of cluster ${var.name}: EC2 discovery and the TLS secret"
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

  # The TLS material, fetched once per boot. Only this one secret.
  statement {
    sid       = "ReadTlsSecret"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.tls_secret_arn]
  }

  # Only when the secret uses a customer-managed key, and only through
  # Secrets Manager (not direct Decrypt calls on the key).
  dynamic "statement" {
    for_each = var.tls_secret_kms_key_arn == null ? [] : [var.tls_secret_kms_key_arn]
    content {
      sid       = "DecryptTlsSecret"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${data.aws_region.current.name}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role_policy" "node" {
  name   = "tribune-broker"
  role   = aws_iam_role.node.id
  policy = data.aws_iam_policy_document.node.json
}
