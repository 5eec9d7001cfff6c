# The tables exactly as `arroba dynamodb tables --json` defines them (infra/tables.json, which
# tests/infra.rs keeps equal to the code): on-demand, PITR, deletion protection, TTL where defined.
locals {
  table_defs = { for t in jsondecode(file("${path.module}/../../../tables.json")) : t.suffix => t }
}

resource "aws_dynamodb_table" "this" {
  for_each = local.table_defs

  name                        = "${var.table_prefix}${each.key}"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = each.value.partition.name
  range_key                   = each.value.sort == null ? null : each.value.sort.name
  deletion_protection_enabled = true

  dynamic "attribute" {
    # Every key attribute of the table and its indexes, once each.
    for_each = distinct(concat(
      [each.value.partition],
      each.value.sort == null ? [] : [each.value.sort],
      flatten([for i in each.value.indexes : concat([i.partition], i.sort == null ? [] : [i.sort])]),
    ))
    content {
      name = attribute.value.name
      type = attribute.value.type
    }
  }

  dynamic "global_secondary_index" {
    for_each = each.value.indexes
    content {
      name            = global_secondary_index.value.name
      hash_key        = global_secondary_index.value.partition.name
      range_key       = global_secondary_index.value.sort == null ? null : global_secondary_index.value.sort.name
      projection_type = "KEYS_ONLY"
    }
  }

  dynamic "ttl" {
    for_each = each.value.ttl == null ? [] : [each.value.ttl]
    content {
      attribute_name = ttl.value
      enabled        = true
    }
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled = true
  }

  lifecycle {
    prevent_destroy = true
  }
}
