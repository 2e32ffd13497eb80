terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.67, < 7.0"
    }
  }
}
