# nats.<domain>: an alias of the cluster's Network Load Balancer.
#
# The NLB health-checks the brokers and sends new connections to healthy
# ones only, so this one name is all clients need: tls://nats.<domain>:4222
# and wss://nats.<domain> for browsers. The brokers advertise the same name
# in INFO (connect_urls), so a client's reconnects come back through it
# too. An alias costs nothing per query and follows the NLB's addresses;
# evaluate_target_health lets Route53 drop the record if the NLB itself has
# no healthy target at all.

resource "aws_route53_record" "nats" {
  zone_id = var.zone_id
  name    = "${var.record_name}.${var.domain}"
  type    = "A"

  alias {
    name                   = var.lb_dns_name
    zone_id                = var.lb_zone_id
    evaluate_target_health = true
  }
}
