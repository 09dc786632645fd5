output "vpc_id" {
  description = "ID of the VPC. The brokers' EC2 discovery only routes to instances in it."
  value       = aws_vpc.this.id
}

output "vpc_cidr" {
  description = "IPv4 CIDR of the VPC."
  value       = aws_vpc.this.cidr_block
}

output "subnet_ids" {
  description = "Public subnet ID per availability zone (map AZ name => subnet ID)."
  value       = { for az, s in aws_subnet.public : az => s.id }
}

output "flow_log_group_name" {
  description = "CloudWatch Logs group receiving the VPC flow logs."
  value       = aws_cloudwatch_log_group.flow_logs.name
}

output "flow_log_kms_key_arn" {
  description = "ARN of the customer-managed KMS key encrypting the flow-log group."
  value       = aws_kms_key.flow_logs.arn
}
