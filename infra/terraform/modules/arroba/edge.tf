# The edge: one hostname (and its handle subdomains) for XRPC and the firehose. CloudFront
# forwards the viewer's Host, because the PDS answers /.well-known/atproto-did by it; API Gateway
# accepts that Host through custom domains for both names. The firehose, the two whole-repo
# exports (responses beyond Lambda's 6 MB) and the bulk paths (uploads and blob downloads, bodies
# beyond it) go to the ALB, which sends the bulk paths to the bulk container.
locals {
  edge       = var.edge_certificate_arn != "" || var.create_certificate
  edge_names = [var.hostname, "*.${var.hostname}"]
  firehose_paths = [
    "/xrpc/com.atproto.sync.subscribeRepos", "/xrpc/com.atproto.sync.getRepo",
    "/xrpc/com.atproto.sync.getCheckout",
  ]
  bulk_paths = ["/xrpc/com.atproto.repo.importRepo", "/xrpc/com.atproto.repo.uploadBlob", "/xrpc/com.atproto.sync.getBlob"]
  # AWS managed policies: CachingDisabled and AllViewerAndCloudFrontHeaders-2022-06 (forwards
  # Host, and CloudFront-Viewer-Address: the client address the rate limits count).
  caching_disabled = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
  all_viewer       = "33f36d7e-f396-46d9-90e0-52428a34d9dc"
}

resource "aws_apigatewayv2_domain_name" "edge" {
  count       = local.edge ? 2 : 0
  domain_name = local.edge_names[count.index]
  domain_name_configuration {
    certificate_arn = local.certificate_arn
    endpoint_type   = "REGIONAL"
    security_policy = "TLS_1_2"
  }
}

resource "aws_apigatewayv2_api_mapping" "edge" {
  count       = local.edge ? 2 : 0
  api_id      = aws_apigatewayv2_api.xrpc.id
  domain_name = aws_apigatewayv2_domain_name.edge[count.index].id
  stage       = aws_apigatewayv2_stage.default.id
}

resource "aws_cloudfront_distribution" "edge" {
  count           = local.edge ? 1 : 0
  enabled         = true
  aliases         = local.edge_names
  http_version    = "http2"
  is_ipv6_enabled = true
  web_acl_id      = var.waf_rate_limit > 0 ? aws_wafv2_web_acl.edge[0].arn : null

  origin {
    origin_id   = "xrpc"
    domain_name = aws_apigatewayv2_domain_name.edge[0].domain_name_configuration[0].target_domain_name
    custom_origin_config {
      http_port              = 80
      https_port             = 443
      origin_protocol_policy = "https-only"
      origin_ssl_protocols   = ["TLSv1.2"]
    }
  }

  origin {
    origin_id   = "firehose"
    domain_name = aws_lb.firehose.dns_name
    custom_origin_config {
      http_port              = 80
      https_port             = 443
      origin_protocol_policy = "https-only"
      origin_ssl_protocols   = ["TLSv1.2"]
      # CloudFront's most without a quota increase: an import answers when its repo is written.
      origin_read_timeout = 60
    }
  }

  default_cache_behavior {
    target_origin_id         = "xrpc"
    allowed_methods          = ["GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE"]
    cached_methods           = ["GET", "HEAD"]
    viewer_protocol_policy   = "https-only"
    cache_policy_id          = local.caching_disabled
    origin_request_policy_id = local.all_viewer
  }

  dynamic "ordered_cache_behavior" {
    for_each = local.firehose_paths
    content {
      path_pattern             = ordered_cache_behavior.value
      target_origin_id         = "firehose"
      allowed_methods          = ["GET", "HEAD"]
      cached_methods           = ["GET", "HEAD"]
      viewer_protocol_policy   = "https-only"
      cache_policy_id          = local.caching_disabled
      origin_request_policy_id = local.all_viewer
    }
  }

  dynamic "ordered_cache_behavior" {
    for_each = local.bulk_paths
    content {
      path_pattern             = ordered_cache_behavior.value
      target_origin_id         = "firehose"
      allowed_methods          = ["GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE"]
      cached_methods           = ["GET", "HEAD"]
      viewer_protocol_policy   = "https-only"
      cache_policy_id          = local.caching_disabled
      origin_request_policy_id = local.all_viewer
    }
  }

  viewer_certificate {
    acm_certificate_arn      = local.edge_certificate_arn
    ssl_support_method       = "sni-only"
    minimum_protocol_version = "TLSv1.2_2021"
  }

  restrictions {
    geo_restriction {
      restriction_type = "none"
    }
  }

  logging_config {
    bucket = aws_s3_bucket.access_logs.bucket_domain_name
    prefix = "cloudfront/"
  }

  depends_on = [aws_s3_bucket_ownership_controls.access_logs]
}

resource "aws_route53_record" "edge" {
  count   = local.edge && var.hosted_zone_id != "" ? 2 : 0
  zone_id = var.hosted_zone_id
  name    = local.edge_names[count.index]
  type    = "A"
  alias {
    name                   = aws_cloudfront_distribution.edge[0].domain_name
    zone_id                = aws_cloudfront_distribution.edge[0].hosted_zone_id
    evaluate_target_health = false
  }
}

# An optional WAF on the edge: blocks an IP that sends more than waf_rate_limit requests in five
# minutes. CloudFront's WAF rules live in us-east-1, so the module must be deployed there.
resource "aws_wafv2_web_acl" "edge" {
  count = local.edge && var.waf_rate_limit > 0 ? 1 : 0
  name  = "arroba-edge"
  scope = "CLOUDFRONT"
  default_action {
    allow {}
  }
  rule {
    name     = "rate-per-ip"
    priority = 0
    action {
      block {}
    }
    statement {
      rate_based_statement {
        limit              = var.waf_rate_limit
        aggregate_key_type = "IP"
      }
    }
    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "arroba-rate-per-ip"
      sampled_requests_enabled   = true
    }
  }
  visibility_config {
    cloudwatch_metrics_enabled = true
    metric_name                = "arroba-edge"
    sampled_requests_enabled   = true
  }
  lifecycle {
    precondition {
      condition     = data.aws_region.current.name == "us-east-1"
      error_message = "waf_rate_limit needs the module in us-east-1 (CloudFront WAF rules live there)."
    }
  }
}
