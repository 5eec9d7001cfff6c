# Every value docs/deploy.md tells an operator to look up.
output "xrpc_url" {
  description = "The HTTP API (XRPC through the Lambda)."
  value       = aws_apigatewayv2_api.xrpc.api_endpoint
}

output "firehose_url" {
  description = "The subscribeRepos WebSocket URL on the load balancer."
  value       = "${local.https ? "wss" : "ws"}://${aws_lb.firehose.dns_name}/xrpc/com.atproto.sync.subscribeRepos"
}

output "edge_domain" {
  description = "Point hostname and *.hostname here (CNAME or alias) when Route 53 records were not created."
  value       = local.edge ? aws_cloudfront_distribution.edge[0].domain_name : ""
}

output "firehose_repository_url" {
  description = "Push the image here (docs/deploy.md)."
  value       = aws_ecr_repository.firehose.repository_url
}

output "admin_password_secret_arn" {
  description = "The admin password (arroba admin, pdsadmin)."
  value       = aws_secretsmanager_secret.admin_password.arn
}

output "key_encryption_keys_secret_arn" {
  description = "Back it up: it seals every account key."
  value       = aws_secretsmanager_secret.key_encryption_keys.arn
}

output "plc_rotation_key_secret_arn" {
  description = "Back it up: the operator rotation key of every DID."
  value       = aws_secretsmanager_secret.plc_rotation_key.arn
}

output "alarm_topic_arn" {
  description = "Subscribe to get alarms."
  value       = aws_sns_topic.alarms.arn
}

output "blob_bucket" {
  value = aws_s3_bucket.blobs.bucket
}

output "table_names" {
  value = { for k, t in aws_dynamodb_table.this : k => t.name }
}
