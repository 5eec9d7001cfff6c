# Secrets: generated into Secrets Manager; the Lambda gets their ARNs, the firehose task gets
# them as ECS secrets. Terraform state holds the generated values: keep state encrypted.
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

# The key-encryption keys (id:base64key[,id:base64key]) are set by the operator before the first
# deploy (docs/deploy.md); Terraform creates the secret only, never its value.
resource "aws_secretsmanager_secret" "key_encryption_keys" {
  name_prefix = "arroba-kek-"
  description = "id:base64key[,id:base64key] - set a real 32-byte key before the first deploy (docs/deploy.md)"
}

# The operator's PLC rotation key, listed in every DID the PDS creates (docs/identity.md): a k256
# private key as 64 hex digits, which random_id generates.
resource "random_id" "plc_rotation_key" {
  byte_length = 32
}

resource "aws_secretsmanager_secret" "plc_rotation_key" {
  name_prefix = "arroba-plc-rotation-"
  description = "k256 private key, 64 hex digits: the operator rotation key in every DID this PDS creates"
}

resource "aws_secretsmanager_secret_version" "plc_rotation_key" {
  secret_id     = aws_secretsmanager_secret.plc_rotation_key.id
  secret_string = random_id.plc_rotation_key.hex
}

locals {
  # What the firehose task is given; the Lambda also reads the PLC rotation key.
  secret_arns = [
    aws_secretsmanager_secret.jwt.arn,
    aws_secretsmanager_secret.admin_password.arn,
    aws_secretsmanager_secret.key_encryption_keys.arn,
  ]
  environment = {
    PDS_HOSTNAME               = var.hostname
    PDS_SERVICE_HANDLE_DOMAINS = var.handle_domains != "" ? var.handle_domains : ".${var.hostname}"
    PDS_DID_PLC_URL            = var.plc_url
    PDS_CRAWLERS               = var.crawlers
    PDS_STORAGE                = "dynamodb"
    ARROBA_TABLE_PREFIX        = var.table_prefix
    PDS_BLOBSTORE_S3_BUCKET    = aws_s3_bucket.blobs.bucket
    RUST_LOG                   = "info"
    # JSON logs: the firehose lag metric filter reads the `lag` field.
    ARROBA_LOG_FORMAT          = "json"
  }
  table_arns = flatten([for t in aws_dynamodb_table.this : [t.arn, "${t.arn}/index/*"]])
}
