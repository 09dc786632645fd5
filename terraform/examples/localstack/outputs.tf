output "node_public_ips" {
  description = "Elastic IP of each broker, by availability zone."
  value       = module.cluster.public_ips
}

output "ami_parameters" {
  description = "SSM parameter per availability zone naming the AMI that AZ's broker boots; make upgrade moves them one node at a time."
  value       = module.cluster.ami_parameters
}

output "asg_names" {
  description = "Auto Scaling group (of one broker) per availability zone."
  value       = module.cluster.asg_names
}

output "launch_template_ids" {
  description = "Launch template per availability zone."
  value       = module.cluster.launch_template_ids
}

output "data_volume_ids" {
  description = "JetStream data volume per availability zone."
  value       = module.cluster.data_volume_ids
}

output "eip_allocation_ids" {
  description = "Elastic IP allocation per availability zone."
  value       = module.cluster.eip_allocation_ids
}

output "nlb_dns_name" {
  description = "DNS name of the client NLB."
  value       = module.cluster.nlb_dns_name
}

output "nlb_arn" {
  description = "ARN of the client NLB."
  value       = module.cluster.nlb_arn
}

output "target_group_arns" {
  description = "Target group per client port."
  value       = module.cluster.target_group_arns
}

output "nlb_security_group_id" {
  description = "The client NLB's security group."
  value       = module.cluster.nlb_security_group_id
}

output "websocket_url" {
  description = "Browsers' URL through nats.<domain>."
  value       = module.endpoint.websocket_url
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

output "secret_arns" {
  description = "The cluster's secrets (made by the bootstrap), by kind."
  value       = { for k, s in data.aws_secretsmanager_secret.cluster : k => s.arn }
}

output "secrets_kms_key_arn" {
  description = "The key behind alias/tribune-<cluster>."
  value       = data.aws_kms_alias.secrets.target_key_arn
}

output "iam_role_arn" {
  description = "The brokers' instance role."
  value       = module.cluster.iam_role_arn
}

output "ebs_kms_key_arn" {
  description = "The brokers' volume key."
  value       = aws_kms_key.ebs.arn
}
