output "instance_ids" {
  description = "Broker instance ID per availability zone."
  value       = { for az, i in aws_instance.node : az => i.id }
}

output "private_ips" {
  description = "Broker private IP per availability zone: the addresses routes (6222) use."
  value       = { for az, i in aws_instance.node : az => i.private_ip }
}

output "public_ips" {
  description = "Elastic IP per availability zone: the addresses clients (4222) and operators (8222, 22) use."
  value       = { for az, e in aws_eip.node : az => e.public_ip }
}

output "client_urls" {
  description = "One tls:// client URL per broker, for clients that do not use the DNS name."
  value       = [for az in sort(keys(aws_eip.node)) : "tls://${aws_eip.node[az].public_ip}:4222"]
}

output "security_group_id" {
  description = "Security group of the brokers (the only source allowed on the route port)."
  value       = aws_security_group.cluster.id
}

output "iam_role_arn" {
  description = "Instance role of the brokers."
  value       = aws_iam_role.node.arn
}

output "discovery_tag" {
  description = "The tag EC2 discovery filters on, as key and value."
  value       = { key = var.discovery_tag_key, value = var.name }
}
