# CloudWatch alarms: the conditions of the Prometheus rules
# (terraform/monitoring/prometheus/tribune-alerts.yml) for deployments that
# run no Prometheus. Every node publishes them from its own /metrics each
# minute (packer/files/tribune-cloudwatch-metrics) into the Tribune
# namespace, with the dimensions Cluster and Node (its availability zone,
# which a replaced instance keeps).
#
# A node that is gone publishes nothing: its broker-down alarm treats
# missing data as down. Every other alarm treats missing data as fine (a
# service not configured on a node publishes nothing about itself). No
# alarm does metric math across nodes' own series: a series that vanishes
# with its node would leave the expression without data.

locals {
  metrics_namespace = "Tribune"
  azs               = sort(keys(var.subnet_ids))

  # Per node: metric, statistic, comparison, threshold, minutes in a row.
  node_alarms = {
    broker-down = {
      metric = "BrokerUp", stat = "Minimum", op = "LessThanThreshold", threshold = 1, minutes = 2, missing = "breaching"
      about  = "tribune-broker does not answer, or the instance is gone. The cluster serves on two nodes; one more loss stops replicated JetStream."
    }
    # Each node of the full mesh routes to every other; a dead node is its
    # own alarm (and shows here too, on the nodes left, until it is back).
    route-missing = {
      metric = "Routes", stat = "Minimum", op = "LessThanThreshold", threshold = length(local.azs) - 1, minutes = 5, missing = "notBreaching"
      about  = "The node has fewer routes than the cluster has other nodes: messages published on one side of a gap do not reach subscribers on the other. Check broker-down of the other nodes, /routez and the security groups."
    }
    slow-consumers = {
      metric = "SlowConsumers", stat = "Sum", op = "GreaterThanThreshold", threshold = 0, minutes = 1, missing = "notBreaching"
      about  = "The broker closed clients that read too slowly (their pending bytes passed max_pending)."
    }
    auth-failures = {
      metric = "AuthErrors", stat = "Sum", op = "GreaterThanThreshold", threshold = 60, minutes = 5, missing = "notBreaching"
      about  = "More than one refused login a second for five minutes: stale credentials in a loop, or guessing."
    }
    memory-high = {
      metric = "MemoryRatio", stat = "Maximum", op = "GreaterThanThreshold", threshold = 0.8, minutes = 5, missing = "notBreaching"
      about  = "tribune-broker uses over 80% of the instance's memory."
    }
    host-memory-low = {
      metric = "HostMemoryAvailableRatio", stat = "Minimum", op = "LessThanThreshold", threshold = 0.1, minutes = 5, missing = "notBreaching"
      about  = "Less than 10% of the instance's memory is available."
    }
    jetstream-meta-leaderless = {
      metric = "MetaLeaderless", stat = "Maximum", op = "GreaterThanOrEqualToThreshold", threshold = 1, minutes = 2, missing = "notBreaching"
      about  = "The node knows no JetStream meta leader that can make progress: streams and consumers cannot be created or changed."
    }
    jetstream-stream-leaderless = {
      metric = "LeaderlessStreams", stat = "Maximum", op = "GreaterThanOrEqualToThreshold", threshold = 1, minutes = 2, missing = "notBreaching"
      about  = "A stream on this node has no working leader: its publishes get no acknowledgement."
    }
    jetstream-replica-behind = {
      metric = "ReplicasBehind", stat = "Minimum", op = "GreaterThanOrEqualToThreshold", threshold = 1, minutes = 5, missing = "notBreaching"
      about  = "A stream this node leads has a replica that has not been current for five minutes."
    }
    jetstream-disk-low = {
      metric = "StoreFreeRatio", stat = "Minimum", op = "LessThanThreshold", threshold = 0.15, minutes = 5, missing = "notBreaching"
      about  = "The JetStream data volume is less than 15% free."
    }
    jetstream-disk-full = {
      metric = "StoreFreeRatio", stat = "Minimum", op = "LessThanThreshold", threshold = 0.05, minutes = 2, missing = "notBreaching"
      about  = "The JetStream data volume is less than 5% free: a full store refuses every publish."
    }
    auth-down = {
      metric = "AuthUp", stat = "Minimum", op = "LessThanThreshold", threshold = 1, minutes = 2, missing = "notBreaching"
      about  = "tribune-auth is configured on this node and does not answer: web logins that land here wait for another node."
    }
    auth-disconnected = {
      metric = "AuthNatsConnected", stat = "Minimum", op = "LessThanThreshold", threshold = 1, minutes = 2, missing = "notBreaching"
      about  = "tribune-auth is not connected to NATS."
    }
    bridge-down = {
      metric = "BridgeUp", stat = "Minimum", op = "LessThanThreshold", threshold = 1, minutes = 2, missing = "notBreaching"
      about  = "tribune-bridge is configured on this node and does not answer."
    }
    bridge-nats-disconnected = {
      metric = "BridgeNatsConnected", stat = "Minimum", op = "LessThanThreshold", threshold = 1, minutes = 2, missing = "notBreaching"
      about  = "tribune-bridge is not connected to NATS."
    }
    bridge-lag = {
      metric = "BridgeLagMeanSeconds", stat = "Average", op = "GreaterThanThreshold", threshold = 2, minutes = 5, missing = "notBreaching"
      about  = "Updates take over two seconds on average from MQTT to a JetStream acknowledgement."
    }
    bridge-dead-letters = {
      metric = "BridgeDeadLettered", stat = "Sum", op = "GreaterThanThreshold", threshold = 0, minutes = 1, missing = "notBreaching"
      about  = "The bridge dead-lettered updates it could not map or parse; read them in the dead-letter stream."
    }
  }

  node_alarm_list = {
    for pair in setproduct(local.azs, keys(local.node_alarms)) :
    "${pair[0]}/${pair[1]}" => merge(local.node_alarms[pair[1]], { az = pair[0], kind = pair[1] })
  }
}

resource "aws_cloudwatch_metric_alarm" "node" {
  for_each = local.node_alarm_list

  alarm_name          = "${var.name}-${each.value.az}-${each.value.kind}"
  alarm_description   = "Tribune ${var.name}, node ${each.value.az}: ${each.value.about}"
  namespace           = local.metrics_namespace
  metric_name         = each.value.metric
  dimensions          = { Cluster = var.name, Node = each.value.az }
  statistic           = each.value.stat
  period              = 60
  evaluation_periods  = each.value.minutes
  datapoints_to_alarm = each.value.minutes
  comparison_operator = each.value.op
  threshold           = each.value.threshold
  treat_missing_data  = each.value.missing
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = var.tags
}

# More than a fifth of a node's web logins refused, with real traffic
# (over six a minute).
resource "aws_cloudwatch_metric_alarm" "auth_rejections" {
  for_each = toset(local.azs)

  alarm_name          = "${var.name}-${each.key}-auth-rejections-high"
  alarm_description   = "Tribune ${var.name}, node ${each.key}: tribune-auth refuses over 20% of web logins. Its log and tribune_auth_rejections_total say why (expired, bad signature after an IdP key rotation, unknown app)."
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  evaluation_periods  = 10
  datapoints_to_alarm = 10
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = var.tags

  metric_query {
    id          = "high"
    expression  = "IF(requests > 6 AND refused / requests > 0.2, 1, 0)"
    label       = "Refusing over 20% of logins"
    return_data = true
  }
  dynamic "metric_query" {
    for_each = { requests = "AuthRequests", refused = "AuthRefused" }
    content {
      id = metric_query.key
      metric {
        namespace   = local.metrics_namespace
        metric_name = metric_query.value
        dimensions  = { Cluster = var.name, Node = each.key }
        stat        = "Sum"
        period      = 60
      }
    }
  }
}

# No bridge of the cluster holds the lease with a live MQTT connection,
# where a bridge is configured. Every live node publishes both inputs with
# the Cluster dimension alone (tribune-cloudwatch-metrics), so the alarm
# reads two series all nodes feed: a node that is gone takes no series
# with it. Two-minute periods hold a datum of every node.
resource "aws_cloudwatch_metric_alarm" "bridge_not_ingesting" {
  alarm_name          = "${var.name}-bridge-not-ingesting"
  alarm_description   = "Tribune ${var.name}: no tribune-bridge ingests the provider's MQTT feed, so match updates are not reaching JetStream. Check the provider's endpoint and the bridges' /healthz."
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = var.tags

  metric_query {
    id          = "none"
    expression  = "IF(configured > 0 AND ingesting < 1, 1, 0)"
    label       = "No bridge ingesting"
    return_data = true
  }
  dynamic "metric_query" {
    for_each = { configured = "BridgeConfigured", ingesting = "BridgeIngesting" }
    content {
      id = metric_query.key
      metric {
        namespace   = local.metrics_namespace
        metric_name = metric_query.value
        dimensions  = { Cluster = var.name }
        stat        = "Maximum"
        period      = 120
      }
    }
  }
}
