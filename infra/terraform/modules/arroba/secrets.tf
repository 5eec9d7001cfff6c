# Secrets: generated into Secrets Manager in the forms the binaries read. The Lambda gets their
# ARNs; of the task's containers only the bulk one gets a secret (the JWT secret), injected by
# the execution role. Terraform state holds the generated values: keep state encrypted.
resource "random_password" "jwt" {
  length  = 48
  special = false
}

resource "random_password" "admin" {
  length  = 32
  special = false
}

resource "aws_secretsmanager_secret" "jwt" {
  name_prefix = "arroba-jwt-"
}

resource "aws_secretsmanager_secret_version" "jwt" {
  secret_id     = aws_secretsmanager_secret.jwt.id
  secret_string = random_password.jwt.result
}

resource "aws_secretsmanager_secret" "admin_password" {
  name_prefix = "arroba-admin-"
}

resource "aws_secretsmanager_secret_version" "admin_password" {
  secret_id     = aws_secretsmanager_secret.admin_password.id
  secret_string = random_password.admin.result
}

# The key-encryption key that seals every account's keys: `k1:<32 random bytes, base64>`, the
# form ARROBA_KEY_ENCRYPTION_KEYS reads. Losing it loses every account's keys, so neither the
# key nor its secret may be destroyed by Terraform (rotation: docs/deploy.md).
resource "random_id" "key_encryption_key" {
  byte_length = 32
  lifecycle {
    prevent_destroy = true
  }
}

resource "aws_secretsmanager_secret" "key_encryption_keys" {
  name_prefix = "arroba-kek-"
  description = "Seals account keys (id:base64key). Keep it; rotation in docs/deploy.md"
  lifecycle {
    prevent_destroy = true
  }
}

resource "aws_secretsmanager_secret_version" "key_encryption_keys" {
  secret_id     = aws_secretsmanager_secret.key_encryption_keys.id
  secret_string = "k1:${random_id.key_encryption_key.b64_std}"
}

# The operator's PLC rotation key, listed in every DID the PDS creates (docs/identity.md): a k256
# private key as 64 hex digits, which random_id generates.
resource "random_id" "plc_rotation_key" {
  byte_length = 32
  lifecycle {
    prevent_destroy = true
  }
}

resource "aws_secretsmanager_secret" "plc_rotation_key" {
  name_prefix = "arroba-plc-rotation-"
  description = "k256 private key, 64 hex digits: the operator rotation key in every DID this PDS creates"
  lifecycle {
    prevent_destroy = true
  }
}

resource "aws_secretsmanager_secret_version" "plc_rotation_key" {
  secret_id     = aws_secretsmanager_secret.plc_rotation_key.id
  secret_string = random_id.plc_rotation_key.hex
}

# What each component is given. Kept as plain maps of simple values so that the deploy rehearsal
# (infra/rehearsal.py, run by `make test`) can read exactly what the binaries will see.
locals {
  crawlers = var.crawlers == "none" ? "" : var.crawlers
  common_environment = {
    PDS_HOSTNAME        = var.hostname
    PDS_STORAGE         = "dynamodb"
    ARROBA_TABLE_PREFIX = var.table_prefix
    RUST_LOG            = "info"
    # JSON logs: the firehose lag metric filter reads the `lag` field.
    ARROBA_LOG_FORMAT = "json"
  }
  server_environment = merge(local.common_environment, {
    PDS_DID_PLC_URL         = var.plc_url
    PDS_BLOBSTORE_S3_BUCKET = aws_s3_bucket.blobs.bucket
    PDS_BLOB_UPLOAD_LIMIT   = tostring(var.blob_upload_limit)
  })
  app_view_environment = var.app_view_url == "none" ? {} : {
    PDS_BSKY_APP_VIEW_URL = var.app_view_url
    PDS_BSKY_APP_VIEW_DID = var.app_view_did
  }
  report_service_environment = var.report_service_url == "none" ? {} : {
    PDS_REPORT_SERVICE_URL = var.report_service_url
    PDS_REPORT_SERVICE_DID = var.report_service_did
  }
  # Behind the edge, the client address the rate limits count is the one CloudFront writes.
  client_ip_environment = local.edge ? { PDS_CLIENT_IP_HEADER = "cloudfront-viewer-address" } : {}
  email_environment = local.email ? {
    PDS_EMAIL_SES          = "true"
    PDS_EMAIL_FROM_ADDRESS = local.email_from
  } : {}
  lambda_environment = merge(local.server_environment, local.app_view_environment, local.report_service_environment, local.client_ip_environment, local.email_environment, {
    PDS_SERVICE_HANDLE_DOMAINS = var.handle_domains != "" ? var.handle_domains : ".${var.hostname}"
    PDS_INVITE_REQUIRED        = tostring(var.invite_required)
  })
  lambda_secret_arns = {
    PDS_JWT_SECRET_ARN                            = aws_secretsmanager_secret.jwt.arn
    PDS_ADMIN_PASSWORD_ARN                        = aws_secretsmanager_secret.admin_password.arn
    ARROBA_KEY_ENCRYPTION_KEYS_ARN                = aws_secretsmanager_secret.key_encryption_keys.arn
    PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX_ARN = aws_secretsmanager_secret.plc_rotation_key.arn
  }
  firehose_environment = merge(local.common_environment, {
    PDS_CRAWLERS = local.crawlers
  })
  bulk_environment = local.server_environment
  bulk_secrets = {
    PDS_JWT_SECRET = aws_secretsmanager_secret.jwt.arn
  }
  table_arns = flatten([for t in aws_dynamodb_table.this : [t.arn, "${t.arn}/index/*"]])
}
