# A complete deployment: `terraform init && terraform apply` after `make lambda` and pushing the
# firehose image (docs/deploy.md).
terraform {
  required_version = ">= 1.5"
}

provider "aws" {
  region = var.region
}

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "hostname" {
  type = string
}

variable "firehose_image" {
  type = string
}

variable "certificate_arn" {
  description = "Regional ACM certificate for hostname and *.hostname (the API domains and the ALB)."
  type        = string
}

variable "edge_certificate_arn" {
  description = "The same names in us-east-1, for CloudFront (the same ARN when region is us-east-1)."
  type        = string
}

variable "hosted_zone_id" {
  type    = string
  default = ""
}

module "arroba" {
  source          = "../../modules/arroba"
  hostname        = var.hostname
  crawlers        = "https://bsky.network"
  architecture    = "arm64"
  lambda_zip      = "${path.root}/../../../../target/arroba-lambda.zip"
  firehose_image  = var.firehose_image
  certificate_arn = var.certificate_arn

  edge_certificate_arn = var.edge_certificate_arn
  hosted_zone_id       = var.hosted_zone_id
}

output "xrpc_url" {
  value = module.arroba.xrpc_url
}

output "firehose_url" {
  value = module.arroba.firehose_url
}

output "edge_domain" {
  value = module.arroba.edge_domain
}
