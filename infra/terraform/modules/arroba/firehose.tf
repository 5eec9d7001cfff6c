# The task: Fargate in two AZs (public subnets, no NAT) behind an ALB whose idle timeout suits
# long-lived WebSockets; health checks on /xrpc/_health and a 35 s drain on deploys. Each task
# runs two containers from one image: the firehose (subscribeRepos and the whole-repo exports,
# no secret) and the bulk container (uploadBlob and getBlob, bodies Lambda cannot carry, with
# the JWT secret only).
locals {
  azs = slice(data.aws_availability_zones.available.names, 0, 2)
}

resource "aws_vpc" "this" {
  cidr_block           = "10.42.0.0/16"
  enable_dns_hostnames = true
  tags                 = { Name = "arroba" }
}

resource "aws_default_security_group" "this" {
  # Locks down the VPC's default group: nothing uses it.
  vpc_id = aws_vpc.this.id
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id
}

resource "aws_subnet" "public" {
  count             = 2
  vpc_id            = aws_vpc.this.id
  availability_zone = local.azs[count.index]
  cidr_block        = cidrsubnet(aws_vpc.this.cidr_block, 8, count.index)
  tags              = { Name = "arroba-public-${count.index}" }
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id
  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.this.id
  }
}

resource "aws_route_table_association" "public" {
  count          = 2
  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

resource "aws_cloudwatch_log_group" "flow_logs" {
  name              = "/arroba/vpc-flow-logs"
  retention_in_days = var.log_retention_days
}

resource "aws_iam_role" "flow_logs" {
  name_prefix = "arroba-flow-logs-"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Principal = { Service = "vpc-flow-logs.amazonaws.com" }, Action = "sts:AssumeRole" }]
  })
}

resource "aws_iam_role_policy" "flow_logs" {
  role = aws_iam_role.flow_logs.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
      Resource = "${aws_cloudwatch_log_group.flow_logs.arn}:*"
    }]
  })
}

resource "aws_flow_log" "this" {
  vpc_id          = aws_vpc.this.id
  traffic_type    = "REJECT"
  log_destination = aws_cloudwatch_log_group.flow_logs.arn
  iam_role_arn    = aws_iam_role.flow_logs.arn
}

resource "aws_security_group" "alb" {
  name_prefix = "arroba-alb-"
  description = "public firehose"
  vpc_id      = aws_vpc.this.id
  ingress {
    description = "relays and consumers"
    protocol    = "tcp"
    from_port   = local.https ? 443 : 80
    to_port     = local.https ? 443 : 80
    cidr_blocks = ["0.0.0.0/0"]
  }
  egress {
    description     = "to the firehose containers"
    protocol        = "tcp"
    from_port       = 2584
    to_port         = 2584
    security_groups = [aws_security_group.firehose.id]
  }
  egress {
    description     = "to the bulk containers"
    protocol        = "tcp"
    from_port       = 2585
    to_port         = 2585
    security_groups = [aws_security_group.firehose.id]
  }
}

resource "aws_security_group" "firehose" {
  name_prefix = "arroba-firehose-"
  description = "firehose tasks"
  vpc_id      = aws_vpc.this.id
  ingress {
    description     = "firehose, from the load balancer"
    protocol        = "tcp"
    from_port       = 2584
    to_port         = 2584
    security_groups = [aws_security_group.alb.id]
  }
  ingress {
    description     = "bulk, from the load balancer"
    protocol        = "tcp"
    from_port       = 2585
    to_port         = 2585
    security_groups = [aws_security_group.alb.id]
  }
  egress {
    description = "DynamoDB, S3, ECR, CloudWatch, the PLC directory and relays over HTTPS"
    protocol    = "tcp"
    from_port   = 443
    to_port     = 443
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_lb" "firehose" {
  name_prefix                = "arroba"
  load_balancer_type         = "application"
  internal                   = false
  subnets                    = aws_subnet.public[*].id
  security_groups            = [aws_security_group.alb.id]
  idle_timeout               = 3600
  drop_invalid_header_fields = true
  access_logs {
    bucket  = aws_s3_bucket.access_logs.id
    prefix  = "alb"
    enabled = true
  }
  depends_on = [aws_s3_bucket_policy.access_logs]
}

resource "aws_lb_target_group" "firehose" {
  name_prefix          = "arroba"
  port                 = 2584
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = aws_vpc.this.id
  deregistration_delay = 35
  health_check {
    path     = "/xrpc/_health"
    matcher  = "200"
    interval = 15
  }
}

resource "aws_lb_target_group" "bulk" {
  name_prefix          = "arbulk"
  port                 = 2585
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = aws_vpc.this.id
  deregistration_delay = 35
  health_check {
    path     = "/xrpc/_health"
    matcher  = "200"
    interval = 15
  }
}

resource "aws_lb_listener" "firehose" {
  load_balancer_arn = aws_lb.firehose.arn
  port              = local.https ? 443 : 80
  protocol          = local.https ? "HTTPS" : "HTTP"
  certificate_arn   = local.https ? local.certificate_arn : null
  ssl_policy        = local.https ? "ELBSecurityPolicy-TLS13-1-2-2021-06" : null
  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.firehose.arn
  }
}

# The bulk paths go to the bulk container; everything else the ALB gets is the firehose's.
resource "aws_lb_listener_rule" "bulk" {
  listener_arn = aws_lb_listener.firehose.arn
  priority     = 10
  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.bulk.arn
  }
  condition {
    path_pattern {
      values = local.bulk_paths
    }
  }
}

resource "aws_ecs_cluster" "this" {
  name = "arroba"
  setting {
    name  = "containerInsights"
    value = "enhanced"
  }
}

resource "aws_cloudwatch_log_group" "firehose" {
  name              = "/arroba/firehose"
  retention_in_days = var.log_retention_days
}

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

# The execution role pulls the image, writes logs and injects the bulk container's one secret.
resource "aws_iam_role" "firehose_execution" {
  name_prefix        = "arroba-fh-exec-"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy_attachment" "firehose_execution" {
  role       = aws_iam_role.firehose_execution.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

resource "aws_iam_role_policy" "firehose_execution_secrets" {
  role = aws_iam_role.firehose_execution.id
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = ["secretsmanager:GetSecretValue"], Resource = values(local.bulk_secrets) }]
  })
}

# The task role: the log and blocks to read, skipped markers to write, blob records and bytes
# for the bulk container, and repo records without their sealed keys (the condition allows only
# projected reads of the other attributes). No secret, ever.
resource "aws_iam_role" "firehose_task" {
  name_prefix        = "arroba-fh-task-"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

locals {
  # Every repo-item attribute but `keys` (src/storage/dynamo/items.rs).
  repo_record_attributes = ["did", "handle", "head", "rev", "status", "created_at", "list_pk"]
  # What an import writes of a repo item (with its key): the head and its rev.
  repo_head_attributes = ["did", "head", "rev"]
}

resource "aws_iam_role_policy" "firehose_task" {
  role = aws_iam_role.firehose_task.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect = "Allow"
        Action = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:DescribeTable"]
        Resource = flatten([
          for name in ["events", "blocks", "counters", "kv"] :
          [aws_dynamodb_table.this[name].arn, "${aws_dynamodb_table.this[name].arn}/index/*"]
        ])
      },
      {
        # Skipped markers and blob records; an imported repo's blocks, #sync and its sequence number;
        # the block collector's conditional deletes of unused blocks.
        Effect   = "Allow"
        Action   = ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"]
        Resource = [for name in ["events", "kv", "blocks", "counters"] : aws_dynamodb_table.this[name].arn]
      },
      {
        # An imported repo's new head: the head and rev attributes only, never the sealed keys.
        Effect   = "Allow"
        Action   = ["dynamodb:UpdateItem"]
        Resource = [aws_dynamodb_table.this["repos"].arn]
        Condition = {
          "ForAllValues:StringEquals" = { "dynamodb:Attributes" = local.repo_head_attributes }
        }
      },
      {
        Effect   = "Allow"
        Action   = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"]
        Resource = [aws_dynamodb_table.this["repos"].arn, "${aws_dynamodb_table.this["repos"].arn}/index/*"]
        Condition = {
          "ForAllValues:StringEquals" = { "dynamodb:Attributes" = local.repo_record_attributes }
          StringEqualsIfExists        = { "dynamodb:Select" = "SPECIFIC_ATTRIBUTES" }
        }
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
    ]
  })
}

locals {
  log_options = {
    awslogs-group  = aws_cloudwatch_log_group.firehose.name
    awslogs-region = data.aws_region.current.name
  }
  # The two containers of the task, from one image.
  firehose_container = {
    name                   = "firehose"
    image                  = local.firehose_image
    command                = ["firehose"]
    essential              = true
    stopTimeout            = 30
    readonlyRootFilesystem = true
    portMappings           = [{ containerPort = 2584, protocol = "tcp" }]
    environment            = [for k, v in local.firehose_environment : { name = k, value = v }]
    logConfiguration       = { logDriver = "awslogs", options = merge(local.log_options, { awslogs-stream-prefix = "firehose" }) }
  }
  bulk_container = {
    name                   = "bulk"
    image                  = local.firehose_image
    command                = ["bulk"]
    essential              = true
    stopTimeout            = 30
    readonlyRootFilesystem = true
    portMappings           = [{ containerPort = 2585, protocol = "tcp" }]
    environment            = [for k, v in local.bulk_environment : { name = k, value = v }]
    secrets                = [for k, v in local.bulk_secrets : { name = k, valueFrom = v }]
    logConfiguration       = { logDriver = "awslogs", options = merge(local.log_options, { awslogs-stream-prefix = "bulk" }) }
  }
}

resource "aws_ecs_task_definition" "firehose" {
  family                   = "arroba-firehose"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = "512"
  memory                   = "1024"
  execution_role_arn       = aws_iam_role.firehose_execution.arn
  task_role_arn            = aws_iam_role.firehose_task.arn
  runtime_platform {
    cpu_architecture        = var.architecture == "arm64" ? "ARM64" : "X86_64"
    operating_system_family = "LINUX"
  }
  container_definitions = jsonencode([local.firehose_container, local.bulk_container])
}

resource "aws_ecs_service" "firehose" {
  name                               = "arroba-firehose"
  cluster                            = aws_ecs_cluster.this.id
  task_definition                    = aws_ecs_task_definition.firehose.arn
  desired_count                      = var.firehose_task_count
  launch_type                        = "FARGATE"
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
  network_configuration {
    subnets          = aws_subnet.public[*].id
    security_groups  = [aws_security_group.firehose.id]
    assign_public_ip = true
  }
  load_balancer {
    target_group_arn = aws_lb_target_group.firehose.arn
    container_name   = "firehose"
    container_port   = 2584
  }
  load_balancer {
    target_group_arn = aws_lb_target_group.bulk.arn
    container_name   = "bulk"
    container_port   = 2585
  }
  depends_on = [aws_lb_listener.firehose, aws_lb_listener_rule.bulk]
}
