variable "hostname" {
  description = "The PDS hostname (PDS_HOSTNAME); the service DID is did:web:<hostname>."
  type        = string
}

variable "handle_domains" {
  description = "Comma-separated handle suffixes (PDS_SERVICE_HANDLE_DOMAINS); defaults to .<hostname>."
  type        = string
  default     = ""
}

variable "plc_url" {
  description = "The PLC directory (PDS_DID_PLC_URL)."
  type        = string
  default     = "https://plc.directory"
}

variable "crawlers" {
  description = "Comma-separated relay URLs to notify with requestCrawl (PDS_CRAWLERS); \"none\" for no relay."
  type        = string
  default     = "https://bsky.network"
}

variable "app_view_url" {
  description = "The AppView app.bsky calls go to (PDS_BSKY_APP_VIEW_URL); \"none\" for none."
  type        = string
  default     = "https://api.bsky.app"
}

variable "app_view_did" {
  description = "The AppView's DID (PDS_BSKY_APP_VIEW_DID)."
  type        = string
  default     = "did:web:api.bsky.app"
}

variable "report_service_url" {
  description = "Where reports go (PDS_REPORT_SERVICE_URL); \"none\" for none."
  type        = string
  default     = "https://mod.bsky.app"
}

variable "report_service_did" {
  description = "The report service's DID (PDS_REPORT_SERVICE_DID)."
  type        = string
  default     = "did:plc:ar7c4by46qjdydhdevvrndac"
}

variable "invite_required" {
  description = "Whether sign-ups need an invite code (PDS_INVITE_REQUIRED)."
  type        = bool
  default     = true
}

variable "blob_upload_limit" {
  description = "Largest blob upload in bytes (PDS_BLOB_UPLOAD_LIMIT); uploads go to the task's bulk container."
  type        = number
  default     = 52428800
}

variable "api_rate_limit" {
  description = "HTTP API throttling: steady requests per second for the whole API."
  type        = number
  default     = 200
}

variable "api_burst_limit" {
  description = "HTTP API throttling: the burst above the steady rate."
  type        = number
  default     = 400
}

variable "alarm_email" {
  description = "An address to e-mail alarms to (they always go to the alarms SNS topic)."
  type        = string
  default     = ""
}

variable "waf_rate_limit" {
  description = "Requests per 5 minutes per IP above which a WAF on the edge blocks; 0 for no WAF (us-east-1 only)."
  type        = number
  default     = 0
}

variable "architecture" {
  description = "CPU architecture of the Lambda and the firehose tasks."
  type        = string
  default     = "arm64"
  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture must be arm64 or x86_64."
  }
}

variable "lambda_zip" {
  description = "Path to the Lambda zip holding `bootstrap` (make lambda writes target/arroba-lambda.zip)."
  type        = string
}

variable "firehose_image" {
  description = "The task's image (infra/docker/Dockerfile); empty uses the module's ECR repository's latest tag."
  type        = string
  default     = ""
}

variable "certificate_arn" {
  description = "ACM certificate for the firehose HTTPS listener; empty listens on HTTP 80."
  type        = string
  default     = ""
}

variable "table_prefix" {
  description = "Prefix of every DynamoDB table name (ARROBA_TABLE_PREFIX)."
  type        = string
  default     = "arroba-"
}

variable "firehose_task_count" {
  description = "Number of firehose tasks (spread over two AZs)."
  type        = number
  default     = 2
}

variable "log_retention_days" {
  description = "Retention of every log group."
  type        = number
  default     = 30
}

variable "edge_certificate_arn" {
  description = "ACM certificate in us-east-1 for hostname and *.hostname; with it (and certificate_arn) the module builds the CloudFront edge."
  type        = string
  default     = ""
  validation {
    condition     = var.edge_certificate_arn == "" || var.certificate_arn != ""
    error_message = "edge_certificate_arn needs certificate_arn (the regional certificate for the API and the ALB)."
  }
}

variable "email_from" {
  description = "The address mail is sent from through SES (PDS_EMAIL_FROM_ADDRESS); empty means noreply@<hostname>, \"none\" sends no mail."
  type        = string
  default     = ""
}

variable "hosted_zone_id" {
  description = "Route 53 zone for the hostname and *.hostname alias records; empty creates no records."
  type        = string
  default     = ""
}

variable "create_certificate" {
  description = "Create a DNS-validated certificate for hostname and *.hostname in hosted_zone_id instead of passing ARNs (us-east-1 only, where one certificate serves CloudFront and the region)."
  type        = bool
  default     = false
}
