terraform {
  # 1.9+: variable validations may refer to other variables. 1.11.1+: write-only arguments
  # (modules/postgres/dr writes the replicated primary's master password with them).
  required_version = ">= 1.11.1"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.67: aws_lambda_function_recursion_config. 5.88: password_wo / secret_string_wo
      # (modules/postgres/dr).
      version = ">= 5.88, < 7.0"
    }
  }

  # State is local unless a backend is configured. A team shares state in S3: add a
  # backend.tf with `backend "s3" {}` and pass its settings with
  # `terraform init -backend-config=...` (kept out of the repo: they are account-specific).
  # Each environment lives in its own workspace either way (see docs/deploy.md).
}

provider "aws" {
  # null: the region comes from AWS_REGION / the profile, like the CLI.
  region = var.aws_region

  default_tags {
    tags = merge(var.tags, {
      Project     = "platform-playbook"
      Environment = var.environment
      ManagedBy   = "terraform"
    })
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

# One state per environment: dev.tfvars applied in the prod workspace (or the reverse) would
# replace the other environment's resources. Fails the plan before anything changes.
resource "terraform_data" "workspace_guard" {
  lifecycle {
    precondition {
      condition     = terraform.workspace == var.environment
      error_message = "Workspace is \"${terraform.workspace}\" but environment is \"${var.environment}\": run `terraform -chdir=infra workspace select -or-create ${var.environment}` first."
    }
  }
}

# The DR bucket's region (storage.tf); the deployment region unless dr_region is set.
provider "aws" {
  alias  = "dr"
  region = var.dr_region != null ? var.dr_region : var.aws_region

  default_tags {
    tags = merge(var.tags, {
      Project     = "platform-playbook"
      Environment = var.environment
      ManagedBy   = "terraform"
    })
  }
}

# The PostgreSQL standby replica's region (postgres_dr.tf): postgres_replica_region, else
# dr_region, else the deployment region (a same-region replica, which dr-restore's failover
# rehearsal can promote).
provider "aws" {
  alias  = "postgres_dr"
  region = var.postgres_replica_region != null ? var.postgres_replica_region : (var.dr_region != null ? var.dr_region : var.aws_region)

  default_tags {
    tags = merge(var.tags, {
      Project     = "platform-playbook"
      Environment = var.environment
      ManagedBy   = "terraform"
    })
  }
}
