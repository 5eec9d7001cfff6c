# The repository the firehose image (infra/docker/Dockerfile, both containers of the task) is
# pushed to; `firehose_image` defaults to its `latest` tag. docs/deploy.md has the push commands.
resource "aws_ecr_repository" "firehose" {
  name                 = "arroba-firehose"
  image_tag_mutability = "MUTABLE"
  image_scanning_configuration {
    scan_on_push = true
  }
  encryption_configuration {
    encryption_type = "KMS"
  }
}

locals {
  firehose_image = var.firehose_image != "" ? var.firehose_image : "${aws_ecr_repository.firehose.repository_url}:latest"
}
