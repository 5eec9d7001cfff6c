output "xrpc_url" {
  description = "The HTTP API endpoint serving /xrpc/* (point the PDS hostname here)."
  value       = aws_apigatewayv2_api.xrpc.api_endpoint
}

output "firehose_url" {
  description = "The subscribeRepos WebSocket URL."
  value       = "${local.https ? "wss" : "ws"}://${aws_lb.firehose.dns_name}/xrpc/com.atproto.sync.subscribeRepos"
}

output "blob_bucket" {
  value = aws_s3_bucket.blobs.bucket
}

output "table_names" {
  value = { for k, t in aws_dynamodb_table.this : k => t.name }
}

output "key_encryption_keys_secret_arn" {
  description = "Set its value (id:base64key) before the first deploy."
  value       = aws_secretsmanager_secret.key_encryption_keys.arn
}

output "edge_domain" {
  description = "The CloudFront domain (alias target for hostname and *.hostname), when the edge is built."
  value       = local.edge ? aws_cloudfront_distribution.edge[0].domain_name : ""
}
