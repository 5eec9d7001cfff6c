# Alarms, all to one SNS topic (and an e-mail address when given): HTTP 5xx, Lambda errors,
# DynamoDB throttling as DynamoDB reports it per table, firehose lag, task health.
resource "aws_sns_topic" "alarms" {
  name_prefix = "arroba-alarms-"
}

resource "aws_sns_topic_policy" "alarms" {
  arn = aws_sns_topic.alarms.arn
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AlarmsPublish"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = "sns:Publish"
        Resource  = aws_sns_topic.alarms.arn
      },
      {
        Sid       = "TlsOnly"
        Effect    = "Deny"
        Principal = "*"
        Action    = "sns:Publish"
        Resource  = aws_sns_topic.alarms.arn
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
    ]
  })
}

resource "aws_sns_topic_subscription" "alarm_email" {
  count     = var.alarm_email != "" ? 1 : 0
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

locals {
  # Alarms that fire at or above a threshold, for three minutes in a row.
  threshold_alarms = {
    xrpc-5xx = {
      namespace  = "AWS/ApiGateway", metric = "5xx", statistic = "Sum", threshold = 5
      dimensions = { ApiId = aws_apigatewayv2_api.xrpc.id, Stage = "$default" }
    }
    xrpc-errors = {
      namespace  = "AWS/Lambda", metric = "Errors", statistic = "Sum", threshold = 1
      dimensions = { FunctionName = aws_lambda_function.xrpc.function_name }
    }
    # The firehose logs its lag behind the head of the log as a structured field (milliseconds).
    firehose-lag = {
      namespace  = "Arroba", metric = "FirehoseLag", statistic = "Maximum", threshold = 1000
      dimensions = {}
    }
  }
  # DynamoDB publishes throttling per table as ReadThrottleEvents and WriteThrottleEvents.
  throttle_alarms = merge([
    for name, table in aws_dynamodb_table.this : {
      for metric in ["ReadThrottleEvents", "WriteThrottleEvents"] : "${metric}-${name}" => {
        namespace  = "AWS/DynamoDB", metric = metric, statistic = "Sum", threshold = 1
        dimensions = { TableName = table.name }
      }
    }
  ]...)
}

resource "aws_cloudwatch_metric_alarm" "threshold" {
  for_each            = merge(local.threshold_alarms, local.throttle_alarms)
  alarm_name          = "arroba-${each.key}"
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  dimensions          = each.value.dimensions
  statistic           = each.value.statistic
  period              = 60
  evaluation_periods  = 3
  threshold           = each.value.threshold
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_log_metric_filter" "firehose_lag" {
  name           = "arroba-firehose-lag"
  log_group_name = aws_cloudwatch_log_group.firehose.name
  pattern        = "{ $.fields.lag = * }"
  metric_transformation {
    name      = "FirehoseLag"
    namespace = "Arroba"
    value     = "$.fields.lag"
  }
}

# A container with no healthy target for three minutes: the firehose's or the bulk one's.
resource "aws_cloudwatch_metric_alarm" "unhealthy" {
  for_each = {
    firehose = aws_lb_target_group.firehose.arn_suffix
    bulk     = aws_lb_target_group.bulk.arn_suffix
  }
  alarm_name          = "arroba-${each.key}-unhealthy"
  namespace           = "AWS/ApplicationELB"
  metric_name         = "HealthyHostCount"
  dimensions          = { LoadBalancer = aws_lb.firehose.arn_suffix, TargetGroup = each.value }
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = 3
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
}
