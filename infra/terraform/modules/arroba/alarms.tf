# Alarms: HTTP 5xx, Lambda errors, DynamoDB throttles, firehose lag and task health.
locals {
  # Alarms that fire at or above a threshold, for three minutes in a row.
  threshold_alarms = {
    xrpc-5xx = {
      namespace = "AWS/ApiGateway", metric = "5xx", statistic = "Sum", threshold = 5
      dimensions = { ApiId = aws_apigatewayv2_api.xrpc.id, Stage = "$default" }
    }
    xrpc-errors = {
      namespace = "AWS/Lambda", metric = "Errors", statistic = "Sum", threshold = 1
      dimensions = { FunctionName = aws_lambda_function.xrpc.function_name }
    }
    # The firehose logs its lag behind the head of the log as a structured field (milliseconds).
    firehose-lag = {
      namespace = "Arroba", metric = "FirehoseLag", statistic = "Maximum", threshold = 1000
      dimensions = {}
    }
  }
  throttle_alarms = {
    for name, table in aws_dynamodb_table.this : "throttles-${name}" => {
      namespace = "AWS/DynamoDB", metric = "ThrottledRequests", statistic = "Sum", threshold = 1
      dimensions = { TableName = table.name }
    }
  }
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

resource "aws_cloudwatch_metric_alarm" "firehose_unhealthy" {
  alarm_name          = "arroba-firehose-unhealthy"
  namespace           = "AWS/ApplicationELB"
  metric_name         = "HealthyHostCount"
  dimensions          = { LoadBalancer = aws_lb.firehose.arn_suffix, TargetGroup = aws_lb_target_group.firehose.arn_suffix }
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = 3
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
}
