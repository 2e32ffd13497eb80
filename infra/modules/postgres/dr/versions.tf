terraform {
  # 1.11.1: write-only arguments (password_wo, secret_string_wo) fed by an ephemeral resource,
  # so the master password of a replicated primary never lands in the state or the plan
  # (1.11.0 could not serialize such a plan: hashicorp/terraform#36619).
  required_version = ">= 1.11.1"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.88: aws_db_instance.password_wo and aws_secretsmanager_secret_version.secret_string_wo.
      version = ">= 5.88, < 7.0"
      # aws: the primary's region. aws.dr: the standby replica's region (the same region
      # when the caller passes a provider for it).
      configuration_aliases = [aws.dr]
    }
  }
}
