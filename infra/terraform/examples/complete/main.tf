# A complete deployment (docs/deploy.md): `make lambda`, then
#   terraform init
#   terraform apply -target=module.arroba.aws_ecr_repository.firehose   # the image's repository
#   (push the image to the firehose_repository_url output, docs/deploy.md)
#   terraform apply
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
  description = "The PDS hostname, e.g. pds.example.org."
  type        = string
}

variable "certificate_arn" {
  description = "Regional ACM certificate for hostname and *.hostname (the API domains and the ALB); empty with create_certificate."
  type        = string
  default     = ""
}

variable "edge_certificate_arn" {
  description = "The same names in us-east-1, for CloudFront (the same ARN when region is us-east-1); empty with create_certificate."
  type        = string
  default     = ""
}

variable "hosted_zone_id" {
  type    = string
  default = ""
}

variable "create_certificate" {
  description = "Create a DNS-validated certificate in hosted_zone_id instead of passing ARNs (us-east-1 only)."
  type        = bool
  default     = false
}

variable "alarm_email" {
  type    = string
  default = ""
}

module "arroba" {
  source          = "../../modules/arroba"
  hostname        = var.hostname
  architecture    = "arm64"
  lambda_zip      = "${path.root}/../../../../target/arroba-lambda.zip"
  certificate_arn = var.certificate_arn

  edge_certificate_arn = var.edge_certificate_arn
  hosted_zone_id       = var.hosted_zone_id
  create_certificate   = var.create_certificate
  alarm_email          = var.alarm_email
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

output "firehose_repository_url" {
  value = module.arroba.firehose_repository_url
}

output "admin_password_secret_arn" {
  value = module.arroba.admin_password_secret_arn
}

output "key_encryption_keys_secret_arn" {
  value = module.arroba.key_encryption_keys_secret_arn
}

output "plc_rotation_key_secret_arn" {
  value = module.arroba.plc_rotation_key_secret_arn
}

output "alarm_topic_arn" {
  value = module.arroba.alarm_topic_arn
}
