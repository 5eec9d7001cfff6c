# Alarms: HTTP 5xx, Lambda errors, DynamoDB throttles, firehose lag and task health.
resource "aws_cloudwatch_metric_alarm" "xrpc_5xx" {
  alarm_name          = "arroba-xrpc-5xx"
  namespace           = "AWS/ApiGateway"
  metric_name         = "5xx"
  dimensions          = { ApiId = aws_apigatewayv2_api.xrpc.id, Stage = "$default" }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 3
  threshold           = 5
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
}

resource "aws_cloudwatch_metric_alarm" "xrpc_errors" {
  alarm_name          = "arroba-xrpc-errors"
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.xrpc.function_name }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 3
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
}

resource "aws_cloudwatch_metric_alarm" "throttles" {
  for_each            = aws_dynamodb_table.this
  alarm_name          = "arroba-throttles-${each.key}"
  namespace           = "AWS/DynamoDB"
  metric_name         = "ThrottledRequests"
  dimensions          = { TableName = each.value.name }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 3
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
}

# The firehose logs its lag behind the head of the log as a structured field.
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

resource "aws_cloudwatch_metric_alarm" "firehose_lag" {
  alarm_name          = "arroba-firehose-lag"
  namespace           = "Arroba"
  metric_name         = "FirehoseLag"
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 3
  threshold           = 1000
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
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
