# One Auto Scaling group of exactly one broker per AZ.
#
# Why an ASG of one rather than a plain aws_instance: when the instance
# dies (hardware, a failed EC2 status check, someone terminating it), AWS
# launches a replacement in the same subnet without anyone running
# Terraform. What makes the replacement the *same* node is outside the
# instance: its AZ (so server_name <cluster>-<az>, the JetStream identity),
# its data volume and its Elastic IP (data.tf), which the boot-time script
# attach-data-volume finds by tag and takes over before the broker starts.
#
# Health checks are EC2's (the instance and its status checks), not the
# load balancer's: a broker that answers /healthz with 503 while JetStream
# catches up, or while the cluster has no meta leader, must not be killed
# for it. The NLB already stops sending it clients (nlb.tf); killing it
# would turn one cluster-wide hiccup into three replacements at once.
# systemd restarts a broker process that crashes.

locals {
  # Where each node's AMI is recorded (node_ami below).
  node_ami_parameters = { for az in keys(var.subnet_ids) : az => "/tribune/${var.name}/${az}/ami" }

  node_tags = {
    for az in keys(var.subnet_ids) : az => merge(var.tags, local.discovery_tags, {
      Name           = "${var.name}-${az}"
      "tribune:az"   = az
      "tribune:role" = "broker"
      # What `make upgrade` (ansible/rolling_upgrade.yml) needs to roll this
      # node: its group, and the parameter naming the AMI it boots.
      "tribune:asg"           = "${var.name}-${az}"
      "tribune:ami-parameter" = local.node_ami_parameters[az]
    })
  }
}

# The AMI each node boots, one parameter per node, which the launch
# template resolves at every launch (image_id = resolve:ssm:...). Why not
# the AMI in the template itself: a replacement must come back with the
# version the node ran, and during a rolling upgrade the nodes run different
# ones. `make upgrade` moves a node's parameter to the new AMI just before
# it replaces that node, and moves it back if the node fails its health
# gates; a node replaced later (a failed instance) boots what its parameter
# says. Terraform sets the first value and then leaves it to the upgrades
# (ignore_changes), so an apply never rolls a node back or forward.
resource "aws_ssm_parameter" "node_ami" {
  #checkov:skip=CKV2_AWS_34:An AMI ID is not a secret; SecureString cannot carry the aws:ec2:image data type that launch templates resolve.
  for_each = var.subnet_ids

  name        = local.node_ami_parameters[each.key]
  description = "AMI of the Tribune broker of cluster ${var.name} in ${each.key}; moved by make upgrade"
  type        = "String"
  data_type   = "aws:ec2:image"
  value       = var.ami_id
  tags        = merge(var.tags, { Name = "${var.name}-${each.key}-ami" })

  lifecycle {
    ignore_changes = [value]
  }
}

resource "aws_launch_template" "node" {
  #checkov:skip=CKV_AWS_88:The primary interface gets a public IP at launch only so the boot script can reach the EC2 API (no NAT gateway or VPC endpoints here); the script then moves this AZ's Elastic IP onto the instance, which releases the launch-time address. Clients use the NLB.
  for_each = var.subnet_ids

  name                   = "${var.name}-${each.key}"
  description            = "Tribune broker of cluster ${var.name} in ${each.key}"
  image_id               = "resolve:ssm:${aws_ssm_parameter.node_ami[each.key].name}"
  instance_type          = var.instance_type
  key_name               = var.key_name
  ebs_optimized          = "true"
  user_data              = base64encode(local.user_data)
  update_default_version = true

  dynamic "iam_instance_profile" {
    for_each = var.attach_instance_profile ? [aws_iam_instance_profile.node.arn] : []
    content {
      arn = iam_instance_profile.value
    }
  }

  monitoring {
    enabled = var.detailed_monitoring
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required" # IMDSv2 only
    http_put_response_hop_limit = 1          # no containers on the host need IMDS
    instance_metadata_tags      = "disabled"
  }

  network_interfaces {
    device_index                = 0
    security_groups             = [aws_security_group.cluster.id]
    associate_public_ip_address = true
    delete_on_termination       = true
  }

  # The root volume goes with the instance; JetStream lives on the data
  # volume (data.tf), which does not.
  block_device_mappings {
    device_name = var.root_device_name
    ebs {
      volume_type           = "gp3"
      volume_size           = var.root_volume_size_gb
      encrypted             = true
      kms_key_id            = var.ebs_kms_key_arn
      delete_on_termination = true
    }
  }

  # Tags are on the instance from RunInstances on, so discovery and the
  # aws_ec2 inventory see a replacement as soon as it exists.
  tag_specifications {
    resource_type = "instance"
    tags          = local.node_tags[each.key]
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(var.tags, { Name = "${var.name}-${each.key}-root" })
  }

  tag_specifications {
    resource_type = "network-interface"
    tags          = merge(var.tags, { Name = "${var.name}-${each.key}" })
  }

  tags = merge(var.tags, { Name = "${var.name}-${each.key}" })
}

resource "aws_autoscaling_group" "node" {
  for_each = var.subnet_ids

  name                = "${var.name}-${each.key}"
  vpc_zone_identifier = [each.value]
  min_size            = 1
  max_size            = 1
  desired_capacity    = 1

  # A new launch template version applies to the next replacement only;
  # nothing here replaces running brokers. AMIs do not change the template
  # at all (node_ami above).
  launch_template {
    id      = aws_launch_template.node[each.key].id
    version = aws_launch_template.node[each.key].latest_version
  }

  health_check_type         = "EC2"
  health_check_grace_period = var.health_check_grace_period
  target_group_arns         = [for tg in aws_lb_target_group.client : tg.arn]
  wait_for_capacity_timeout = var.wait_for_capacity_timeout

  # Terminate before launching: two brokers in one AZ would queue for the
  # same data volume, Elastic IP and server_name.
  instance_maintenance_policy {
    min_healthy_percentage = 0
    max_healthy_percentage = 100
  }

  dynamic "tag" {
    for_each = local.node_tags[each.key]
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }

  # The data volume and Elastic IP must exist before a node boots and
  # looks for them.
  depends_on = [aws_ebs_volume.data, aws_eip.node, aws_iam_role_policy.boot]
}
