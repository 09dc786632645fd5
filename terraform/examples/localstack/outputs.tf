output "node_public_ips" {
  description = "Elastic IP of each broker, by availability zone."
  value       = module.cluster.public_ips
}

output "node_private_ips" {
  description = "Private IP of each broker, by availability zone."
  value       = module.cluster.private_ips
}

output "instance_ids" {
  description = "Instance ID of each broker, by availability zone."
  value       = module.cluster.instance_ids
}

output "client_url" {
  description = "Client URL through nats.<domain>."
  value       = module.endpoint.client_url
}

output "client_urls" {
  description = "One tls:// URL per broker."
  value       = module.cluster.client_urls
}

output "vpc_id" {
  description = "The cluster's VPC (the broker's discovery.ec2.vpc_id)."
  value       = module.network.vpc_id
}

output "subnet_ids" {
  description = "Subnet per availability zone."
  value       = module.network.subnet_ids
}

output "security_group_id" {
  description = "The brokers' security group."
  value       = module.cluster.security_group_id
}

output "discovery_tag" {
  description = "Tag key and value discovery filters on."
  value       = module.cluster.discovery_tag
}

output "tls_secret_arn" {
  description = "ARN of the TLS secret."
  value       = aws_secretsmanager_secret.tls.arn
}

output "iam_role_arn" {
  description = "The brokers' instance role."
  value       = module.cluster.iam_role_arn
}
