# Certificates: existing ones by ARN, or one created and DNS-validated in the zone.
locals {
  https = var.certificate_arn != "" || var.create_certificate
  certificate_arn = var.certificate_arn != "" ? var.certificate_arn : (
    var.create_certificate ? aws_acm_certificate_validation.this[0].certificate_arn : ""
  )
  edge_certificate_arn = var.edge_certificate_arn != "" ? var.edge_certificate_arn : local.certificate_arn
}

resource "aws_acm_certificate" "this" {
  count                     = var.create_certificate ? 1 : 0
  domain_name               = var.hostname
  subject_alternative_names = ["*.${var.hostname}"]
  validation_method         = "DNS"
  lifecycle {
    create_before_destroy = true
    precondition {
      condition     = var.hosted_zone_id != "" && data.aws_region.current.name == "us-east-1"
      error_message = "create_certificate needs hosted_zone_id and works in us-east-1; elsewhere pass certificate_arn and edge_certificate_arn."
    }
  }
}

# The hostname and its wildcard share one validation record, hence allow_overwrite.
resource "aws_route53_record" "certificate_validation" {
  for_each = {
    for o in(var.create_certificate ? aws_acm_certificate.this[0].domain_validation_options : []) : o.domain_name => o
  }
  zone_id         = var.hosted_zone_id
  name            = each.value.resource_record_name
  type            = each.value.resource_record_type
  records         = [each.value.resource_record_value]
  ttl             = 300
  allow_overwrite = true
}

resource "aws_acm_certificate_validation" "this" {
  count                   = var.create_certificate ? 1 : 0
  certificate_arn         = aws_acm_certificate.this[0].arn
  validation_record_fqdns = [for r in aws_route53_record.certificate_validation : r.fqdn]
}
