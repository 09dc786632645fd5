# nats.<domain>: one A record listing every broker.
#
# Clients only need one address to bootstrap: after connecting, the INFO
# connect_urls (each broker advertises its Elastic IP) tell them every
# member, and they fail over among those. The DNS name is what goes into
# client configuration and the TLS certificate's subject alternative names.

resource "aws_route53_record" "nats" {
  #checkov:skip=CKV2_AWS_23:The records are the cluster's Elastic IPs (module.cluster.public_ips, passed in through var.ips); checkov cannot follow values across module boundaries, so it sees an A record with no attached resource.
  zone_id = var.zone_id
  name    = "${var.record_name}.${var.domain}"
  type    = "A"
  ttl     = var.ttl
  records = sort(var.ips)
}
