output "node_public_ips" {
  description = "Elastic IP of each broker, by availability zone."
  value       = module.cluster.public_ips
}

output "node_private_ips" {
  description = "Private IP of each broker, by availability zone (route addresses)."
  value       = module.cluster.private_ips
}

output "instance_ids" {
  description = "Instance ID of each broker, by availability zone."
  value       = module.cluster.instance_ids
}

output "client_url" {
  description = "What clients connect to: tls://nats.<domain>:4222 with a DNS record, else every broker's tls:// URL joined with commas."
  value       = length(module.endpoint) > 0 ? module.endpoint[0].client_url : join(",", module.cluster.client_urls)
}

output "client_urls" {
  description = "One tls:// URL per broker."
  value       = module.cluster.client_urls
}

output "vpc_id" {
  description = "The cluster's VPC."
  value       = module.network.vpc_id
}

output "ami_id" {
  description = "AMI the brokers were launched from."
  value       = local.ami_id
}

output "discovery_tag" {
  description = "Tag the brokers discover each other by (also what ansible/inventory/aws_ec2.yml filters on)."
  value       = module.cluster.discovery_tag
}
