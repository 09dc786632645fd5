output "fqdn" {
  description = "The DNS name clients use, e.g. nats.example.com."
  value       = aws_route53_record.nats.fqdn
}

output "client_url" {
  description = "Client URL through the DNS name (TLS), e.g. tls://nats.example.com:4222."
  value       = "tls://${var.record_name}.${var.domain}:4222"
}

output "websocket_url" {
  description = "Browsers' URL through the DNS name, e.g. wss://nats.example.com."
  value       = "wss://${var.record_name}.${var.domain}"
}
