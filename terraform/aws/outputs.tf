output "node_public_ips" {
  description = "Elastic IP of each broker, by availability zone."
  value       = module.cluster.public_ips
}

output "ami_parameters" {
  description = "SSM parameter per availability zone naming the AMI that AZ's broker boots; make upgrade moves them one node at a time."
  value       = module.cluster.ami_parameters
}

output "asg_names" {
  description = "Auto Scaling group (of one broker) per availability zone; instance IDs change with each replacement."
  value       = module.cluster.asg_names
}

output "data_volume_ids" {
  description = "JetStream data volume of each broker, by availability zone."
  value       = module.cluster.data_volume_ids
}

output "nlb_dns_name" {
  description = "DNS name of the client NLB (nats.<domain> aliases it)."
  value       = module.cluster.nlb_dns_name
}

output "client_url" {
  description = "What clients connect to: tls://nats.<domain>:4222 with a DNS record, else every broker's tls:// URL joined with commas (the brokers then advertise their Elastic IPs)."
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

output "websocket_url" {
  description = "What browsers connect to: wss://nats.<domain> with a DNS record, else null."
  value       = length(module.endpoint) > 0 ? module.endpoint[0].websocket_url : null
}

output "secret_arns" {
  description = "The cluster's secrets (made by `make secrets`), by kind: tls, ca, nkeys, callout, provider, web-idp."
  value       = { for k, s in data.aws_secretsmanager_secret.cluster : k => s.arn }
}

output "alarm_topic_arn" {
  description = "SNS topic the cluster's CloudWatch alarms notify: subscribe to it."
  value       = aws_sns_topic.alarms.arn
}
