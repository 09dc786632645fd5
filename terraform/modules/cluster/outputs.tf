output "asg_names" {
  description = "Auto Scaling group (of one broker) per availability zone. Instance IDs change with every replacement; find the current one by the group or by the discovery tag."
  value       = { for az, g in aws_autoscaling_group.node : az => g.name }
}

output "launch_template_ids" {
  description = "Launch template per availability zone (AMI, user data, instance settings of that AZ's broker)."
  value       = { for az, t in aws_launch_template.node : az => t.id }
}

output "ami_parameters" {
  description = "SSM parameter per availability zone naming the AMI that AZ's broker boots (its launch template resolves it at launch); make upgrade moves them one node at a time."
  value       = { for az, p in aws_ssm_parameter.node_ami : az => p.name }
}

output "data_volume_ids" {
  description = "JetStream data volume per availability zone; it outlives instances and is attached at boot."
  value       = { for az, v in aws_ebs_volume.data : az => v.id }
}

output "eip_allocation_ids" {
  description = "Elastic IP allocation per availability zone; associated with that AZ's broker at boot."
  value       = { for az, e in aws_eip.node : az => e.allocation_id }
}

output "public_ips" {
  description = "Elastic IP per availability zone: the addresses operators (8222, 22) use, the brokers' fixed egress addresses and, without client_hostname, the addresses clients are told."
  value       = { for az, e in aws_eip.node : az => e.public_ip }
}

output "client_urls" {
  description = "One tls:// client URL per broker's Elastic IP (direct access without client_hostname; diagnostics otherwise)."
  value       = [for az in sort(keys(aws_eip.node)) : "tls://${aws_eip.node[az].public_ip}:4222"]
}

output "nlb_dns_name" {
  description = "DNS name of the client NLB (what nats.<domain> aliases)."
  value       = aws_lb.client.dns_name
}

output "nlb_zone_id" {
  description = "Route53 zone ID of the client NLB, for alias records."
  value       = aws_lb.client.zone_id
}

output "nlb_arn" {
  description = "ARN of the client NLB."
  value       = aws_lb.client.arn
}

output "target_group_arns" {
  description = "Target group per client port (4222 NATS, 443 WebSocket); the ASGs register their instances in both."
  value       = { for port, tg in aws_lb_target_group.client : port => tg.arn }
}

output "security_group_id" {
  description = "Security group of the brokers (the only source allowed on the route port)."
  value       = aws_security_group.cluster.id
}

output "nlb_security_group_id" {
  description = "Security group of the client NLB (client_cidrs in, brokers out)."
  value       = aws_security_group.nlb.id
}

output "iam_role_arn" {
  description = "Instance role of the brokers."
  value       = aws_iam_role.node.arn
}

output "discovery_tag" {
  description = "The tag EC2 discovery filters on, as key and value."
  value       = { key = var.discovery_tag_key, value = var.name }
}
