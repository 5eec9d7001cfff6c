# The XRPC Lambda behind an HTTP API. Secrets arrive as ARNs, read at start-up (src/bin/lambda.rs).
# The HTTP API carries 10 MB and Lambda 6 MB, which is why uploads and blob downloads go to the
# task's bulk container (firehose.tf, edge.tf).
resource "aws_cloudwatch_log_group" "xrpc" {
  name              = "/aws/lambda/arroba-xrpc"
  retention_in_days = var.log_retention_days
}

resource "aws_iam_role" "xrpc" {
  name_prefix = "arroba-xrpc-"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Principal = { Service = "lambda.amazonaws.com" }, Action = "sts:AssumeRole" }]
  })
}

resource "aws_iam_role_policy" "xrpc" {
  role = aws_iam_role.xrpc.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat([
      {
        Effect   = "Allow"
        Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
        Resource = "${aws_cloudwatch_log_group.xrpc.arn}:*"
      },
      {
        Effect = "Allow"
        Action = [
          "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:Scan",
          "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
          "dynamodb:BatchWriteItem", "dynamodb:TransactWriteItems", "dynamodb:ConditionCheckItem",
          "dynamodb:DescribeTable",
        ]
        Resource = local.table_arns
      },
      {
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
        Resource = "${aws_s3_bucket.blobs.arn}/*"
      },
      {
        Effect   = "Allow"
        Action   = ["s3:ListBucket"]
        Resource = aws_s3_bucket.blobs.arn
      },
      {
        Effect   = "Allow"
        Action   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
        Resource = values(local.lambda_secret_arns)
      },
      ],
      # Sending as the SES identity, when the stack sends mail.
      [for identity in aws_sesv2_email_identity.sender : {
        Effect   = "Allow"
        Action   = ["ses:SendEmail", "ses:SendRawEmail"]
        Resource = identity.arn
      }],
    )
  })
}

resource "aws_lambda_function" "xrpc" {
  function_name    = "arroba-xrpc"
  role             = aws_iam_role.xrpc.arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.architecture]
  filename         = var.lambda_zip
  source_code_hash = filebase64sha256(var.lambda_zip)
  memory_size      = 1024
  timeout          = 30

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.xrpc.name
  }

  environment {
    variables = merge(local.lambda_environment, local.lambda_secret_arns)
  }
}

resource "aws_cloudwatch_log_group" "api" {
  name              = "/aws/apigateway/arroba-xrpc"
  retention_in_days = var.log_retention_days
}

resource "aws_apigatewayv2_api" "xrpc" {
  name          = "arroba-xrpc"
  protocol_type = "HTTP"
}

resource "aws_apigatewayv2_integration" "xrpc" {
  api_id                 = aws_apigatewayv2_api.xrpc.id
  integration_type       = "AWS_PROXY"
  integration_uri        = aws_lambda_function.xrpc.invoke_arn
  payload_format_version = "2.0"
}

resource "aws_apigatewayv2_route" "default" {
  api_id    = aws_apigatewayv2_api.xrpc.id
  route_key = "$default"
  target    = "integrations/${aws_apigatewayv2_integration.xrpc.id}"
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.xrpc.id
  name        = "$default"
  auto_deploy = true
  # The whole API is throttled: requests per second, and the burst above it.
  default_route_settings {
    throttling_rate_limit  = var.api_rate_limit
    throttling_burst_limit = var.api_burst_limit
  }
  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api.arn
    format = jsonencode({
      requestId = "$context.requestId", ip = "$context.identity.sourceIp", method = "$context.httpMethod",
      path      = "$context.path", status = "$context.status", latency = "$context.responseLatency"
    })
  }
}

resource "aws_lambda_permission" "api" {
  statement_id  = "AllowHttpApi"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.xrpc.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.xrpc.execution_arn}/*/*"
}
