# Mail: the sender's domain as an SES identity with Easy DKIM (the three DKIM records go in the
# hosted zone when one is given; docs/deploy.md says what to add otherwise), and the Lambda may
# send as it (PDS_EMAIL_SES, PDS_EMAIL_FROM_ADDRESS).

locals {
  email_from   = var.email_from != "" ? var.email_from : "noreply@${var.hostname}"
  email        = var.email_from != "none"
  email_domain = local.email ? split("@", local.email_from)[1] : ""
}

resource "aws_sesv2_email_identity" "sender" {
  count          = local.email ? 1 : 0
  email_identity = local.email_domain
}

resource "aws_route53_record" "dkim" {
  count   = local.email && var.hosted_zone_id != "" ? 3 : 0
  zone_id = var.hosted_zone_id
  name    = "${aws_sesv2_email_identity.sender[0].dkim_signing_attributes[0].tokens[count.index]}._domainkey.${local.email_domain}"
  type    = "CNAME"
  ttl     = 1800
  records = ["${aws_sesv2_email_identity.sender[0].dkim_signing_attributes[0].tokens[count.index]}.dkim.amazonses.com"]
}
