# One security group for the brokers. Rules are separate resources (one
# CIDR each) so adding a client CIDR does not rewrite the others.
#
#   4222  NATS clients (TLS)       through the NLB (its security group, which
#   443   browsers (wss://)        admits client_cidrs); directly from
#                                  client_cidrs too when no client_hostname
#                                  is set and clients are told the EIPs
#   6222  cluster routes (mTLS)    only from this security group, i.e. the
#                                  peers' private IPs inside the VPC
#   8222  monitoring (/healthz...) from admin_cidrs, and the NLB's health checks
#   22    SSH for Ansible          from admin_cidrs (enable_ssh)

resource "aws_security_group" "cluster" {
  name_prefix = "${var.name}-brokers-"
  description = "Tribune brokers of cluster ${var.name}"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name}-brokers" })

  lifecycle {
    create_before_destroy = true
  }
}

# Direct client access (clients dial the EIPs they learn from INFO
# connect_urls) only when the brokers advertise their EIPs, i.e. without a
# client_hostname; with one, every client connection comes through the NLB.
locals {
  direct_client_cidrs = var.client_hostname == null ? toset(var.client_cidrs) : toset([])
}

resource "aws_vpc_security_group_ingress_rule" "client" {
  for_each = local.direct_client_cidrs

  security_group_id = aws_security_group.cluster.id
  description       = "NATS clients (TLS)"
  ip_protocol       = "tcp"
  from_port         = 4222
  to_port           = 4222
  cidr_ipv4         = strcontains(each.value, ":") ? null : each.value
  cidr_ipv6         = strcontains(each.value, ":") ? each.value : null
}

resource "aws_vpc_security_group_ingress_rule" "websocket" {
  for_each = local.direct_client_cidrs

  security_group_id = aws_security_group.cluster.id
  description       = "Browsers: NATS over WebSocket (wss:// only)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = strcontains(each.value, ":") ? null : each.value
  cidr_ipv6         = strcontains(each.value, ":") ? each.value : null
}

# Clients through the NLB (their own IPs are preserved; AWS lets this rule
# match them because they arrive through the referenced NLB group), and
# its health checks on the monitoring port.
resource "aws_vpc_security_group_ingress_rule" "from_nlb" {
  for_each = toset(concat(keys(local.client_ports), [tostring(local.monitor_port)]))

  security_group_id            = aws_security_group.cluster.id
  description                  = each.key == tostring(local.monitor_port) ? "NLB health checks (/healthz)" : "Clients through the NLB"
  ip_protocol                  = "tcp"
  from_port                    = tonumber(each.key)
  to_port                      = tonumber(each.key)
  referenced_security_group_id = aws_security_group.nlb.id
}

resource "aws_vpc_security_group_ingress_rule" "route" {
  security_group_id            = aws_security_group.cluster.id
  description                  = "Cluster routes from the other brokers"
  ip_protocol                  = "tcp"
  from_port                    = 6222
  to_port                      = 6222
  referenced_security_group_id = aws_security_group.cluster.id
}

resource "aws_vpc_security_group_ingress_rule" "monitor" {
  for_each = toset(var.admin_cidrs)

  security_group_id = aws_security_group.cluster.id
  description       = "Monitoring endpoints for operators and Ansible"
  ip_protocol       = "tcp"
  from_port         = 8222
  to_port           = 8222
  cidr_ipv4         = strcontains(each.value, ":") ? null : each.value
  cidr_ipv6         = strcontains(each.value, ":") ? each.value : null
}

resource "aws_vpc_security_group_ingress_rule" "ssh" {
  for_each = var.enable_ssh ? toset(var.admin_cidrs) : toset([])

  security_group_id = aws_security_group.cluster.id
  description       = "SSH for Ansible rolling upgrades"
  ip_protocol       = "tcp"
  from_port         = 22
  to_port           = 22
  cidr_ipv4         = strcontains(each.value, ":") ? null : each.value
  cidr_ipv6         = strcontains(each.value, ":") ? each.value : null
}

resource "aws_vpc_security_group_egress_rule" "route" {
  security_group_id            = aws_security_group.cluster.id
  description                  = "Cluster routes to the other brokers"
  ip_protocol                  = "tcp"
  from_port                    = 6222
  to_port                      = 6222
  referenced_security_group_id = aws_security_group.cluster.id
}

# The AWS APIs the nodes call (EC2 DescribeInstances for discovery, Secrets
# Manager at boot, STS) are public HTTPS endpoints; without VPC interface
# endpoints their addresses are not a fixed set, so 443 goes anywhere.
# DNS (169.254.169.253), NTP (169.254.169.123) and IMDS are link-local and
# not subject to security groups.
resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.cluster.id
  description       = "HTTPS to AWS APIs (EC2, Secrets Manager, STS)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

# The provider's port follows the bridge's transport (bridge_mqtt_url):
# 8883 for MQTT over TLS, 443 for MQTT over WebSocket over TLS, or the URL's
# explicit port. 443 to 0.0.0.0/0 is the https rule above already (AWS
# refuses a duplicate rule), so that one CIDR is left out then.
locals {
  bridge_mqtt_url_parts = regex("(?i)^(mqtts|ssl|wss)://(?:\\[[0-9a-f:.]+\\]|[a-z0-9._-]+)(?::([0-9]{1,5}))?(?:/[^?#\\s]*)?$", var.bridge_mqtt_url)
  bridge_mqtt_scheme    = lower(local.bridge_mqtt_url_parts[0])
  bridge_mqtt_port = (
    local.bridge_mqtt_url_parts[1] != null
    ? tonumber(local.bridge_mqtt_url_parts[1])
    : (local.bridge_mqtt_scheme == "wss" ? 443 : 8883)
  )
  bridge_mqtt_cidrs = [
    for c in var.bridge_mqtt_cidrs : c
    if !(local.bridge_mqtt_port == 443 && c == "0.0.0.0/0")
  ]
}

resource "aws_vpc_security_group_egress_rule" "mqtt" {
  for_each = toset(local.bridge_mqtt_cidrs)

  security_group_id = aws_security_group.cluster.id
  description       = "tribune-bridge to the MQTT provider (${local.bridge_mqtt_scheme == "wss" ? "MQTT over WebSocket, TLS" : "MQTT over TLS"})"
  ip_protocol       = "tcp"
  from_port         = local.bridge_mqtt_port
  to_port           = local.bridge_mqtt_port
  cidr_ipv4         = strcontains(each.value, ":") ? null : each.value
  cidr_ipv6         = strcontains(each.value, ":") ? each.value : null
}
