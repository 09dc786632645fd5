# Scheduled snapshots of the JetStream data volumes, the point a cluster can
# be restored to if its volumes are lost (README "Restore JetStream from
# snapshots"). One node's loss never needs them: it catches up from the
# other two. Data Lifecycle Manager takes them, so they keep being taken
# whatever happens to the instances.

resource "aws_iam_role" "snapshots" {
  count = var.data_snapshot_retain > 0 ? 1 : 0

  name = "${var.name}-data-snapshots"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "dlm.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
  tags = var.tags
}

resource "aws_iam_role_policy_attachment" "snapshots" {
  count = var.data_snapshot_retain > 0 ? 1 : 0

  role       = aws_iam_role.snapshots[0].name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AWSDataLifecycleManagerServiceRole"
}

resource "aws_dlm_lifecycle_policy" "data" {
  count = var.data_snapshot_retain > 0 ? 1 : 0

  description        = "Tribune ${var.name} JetStream data volumes"
  execution_role_arn = aws_iam_role.snapshots[0].arn
  state              = "ENABLED"

  policy_details {
    resource_types = ["VOLUME"]
    # All three volumes at the same time of day, so a restore takes a set
    # from one moment.
    target_tags = { "tribune:snapshots" = var.name }

    schedule {
      name      = "every ${var.data_snapshot_interval_hours} h"
      copy_tags = true
      create_rule {
        interval      = var.data_snapshot_interval_hours
        interval_unit = "HOURS"
        times         = ["03:00"]
      }
      retain_rule {
        count = var.data_snapshot_retain
      }
      tags_to_add = { "tribune:snapshot" = "scheduled" }
    }
  }

  tags = var.tags
}
