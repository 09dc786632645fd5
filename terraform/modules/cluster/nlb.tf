# One name for clients: a Network Load Balancer in front of the three
# brokers, TCP passthrough on 4222 (NATS over TLS) and 443 (wss://), so TLS
# stays end to end between the client and a broker (the certificate names
# nats.<domain>; see README "Client endpoint"). The endpoint module points
# nats.<domain> at it.
#
# - Targets are the ASGs' instances (target_group_arns in nodes.tf): a
#   replacement registers itself, nothing has to update DNS.
# - Health: HTTP /healthz on the monitoring port. It fails in lame-duck
#   mode and while a node is not current with JetStream, so new clients
#   only go to nodes ready for them. When every target is unhealthy an NLB
#   sends to all of them (fail open), which is what a cluster-wide JetStream
#   problem should get: core NATS still works.
# - Cross-zone on: with one target per AZ, an AZ whose broker is down would
#   otherwise leave that AZ's NLB address with nowhere to send.
# - Client IPs are preserved (instance targets), and the brokers' security
#   group admits client traffic only from this NLB's security group, which
#   AWS honours with client IP preservation on; client_cidrs are enforced
#   here, on the NLB.

locals {
  # Load balancer names are at most 32 characters.
  lb_name_base = trimsuffix(substr(var.name, 0, 28), "-")
  # Listener port => what it carries.
  client_ports = {
    "4222" = "nats"
    "443"  = "wss"
  }
  monitor_port = 8222
}

resource "aws_security_group" "nlb" {
  name_prefix = "${var.name}-nlb-"
  description = "Tribune NLB of cluster ${var.name}: clients in, brokers out"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name}-nlb" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "nlb_client" {
  for_each = { for pair in setproduct(keys(local.client_ports), var.client_cidrs) : "${pair[0]} ${pair[1]}" => pair }

  security_group_id = aws_security_group.nlb.id
  description       = local.client_ports[each.value[0]] == "nats" ? "NATS clients (TLS)" : "Browsers: NATS over WebSocket (wss:// only)"
  ip_protocol       = "tcp"
  from_port         = tonumber(each.value[0])
  to_port           = tonumber(each.value[0])
  cidr_ipv4         = strcontains(each.value[1], ":") ? null : each.value[1]
  cidr_ipv6         = strcontains(each.value[1], ":") ? each.value[1] : null
}

resource "aws_vpc_security_group_egress_rule" "nlb_to_broker" {
  for_each = toset(concat(keys(local.client_ports), [tostring(local.monitor_port)]))

  security_group_id            = aws_security_group.nlb.id
  description                  = each.key == tostring(local.monitor_port) ? "Health checks to the brokers' /healthz" : "Client traffic to the brokers"
  ip_protocol                  = "tcp"
  from_port                    = tonumber(each.key)
  to_port                      = tonumber(each.key)
  referenced_security_group_id = aws_security_group.cluster.id
}

resource "aws_lb" "client" {
  #checkov:skip=CKV_AWS_91:NLB access logs exist only for TLS listeners; these are TCP passthrough so that TLS ends on the brokers, and the VPC flow logs (network module) record the connections.
  #checkov:skip=CKV_AWS_150:Deletion protection is var.nlb_deletion_protection, true by default and in the AWS root; checkov flags the LocalStack example, which turns it off so its test can destroy what it created.
  name                             = "${local.lb_name_base}-nlb"
  load_balancer_type               = "network"
  internal                         = false
  subnets                          = values(var.subnet_ids)
  security_groups                  = [aws_security_group.nlb.id]
  enable_cross_zone_load_balancing = true
  enable_deletion_protection       = var.nlb_deletion_protection
  ip_address_type                  = "ipv4"
  tags                             = merge(var.tags, { Name = "${var.name}-nlb" })
}

resource "aws_lb_target_group" "client" {
  for_each = local.client_ports

  # A prefix (at most 6 characters) rather than a name, so a change that
  # replaces the group can create the new one before the old one goes.
  name_prefix          = "${each.value}-"
  vpc_id               = var.vpc_id
  target_type          = "instance"
  protocol             = "TCP"
  port                 = tonumber(each.key)
  preserve_client_ip   = "true"
  deregistration_delay = 60 # > the broker's lame duck (10 s grace + 30 s)

  health_check {
    enabled             = true
    protocol            = "HTTP"
    port                = tostring(local.monitor_port)
    path                = "/healthz"
    matcher             = "200"
    interval            = 10
    timeout             = 6
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  tags = merge(var.tags, { Name = "${var.name}-${each.value}" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_lb_listener" "client" {
  #checkov:skip=CKV_AWS_2:TCP passthrough on purpose: TLS (NATS on 4222, wss:// on 443) ends on the brokers with the cluster's certificate, so the NLB never holds a private key.
  #checkov:skip=CKV_AWS_103:Same: no TLS on the NLB, the brokers require TLS 1.2 or newer (min_version in broker.conf).
  for_each = local.client_ports

  load_balancer_arn = aws_lb.client.arn
  protocol          = "TCP"
  port              = tonumber(each.key)

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.client[each.key].arn
  }

  tags = merge(var.tags, { Name = "${var.name}-${each.value}" })
}
