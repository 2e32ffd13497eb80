//! From an SDK operation to the IAM actions it needs.
//!
//! The rule: `aws_sdk_<service>` gives the IAM prefix (table below), the fluent method in
//! PascalCase gives the action (`put_object` -> `PutObject`); IAM compares action names
//! case-insensitively, so `DescribeDbInstances` matches `rds:DescribeDBInstances`. Where the
//! IAM action is named differently from the API operation (S3's ListObjectsV2 is
//! s3:ListBucket, Lambda's Invoke is lambda:InvokeFunction, Budgets' reads are
//! budgets:ViewBudget) the table `RENAMED` says so. Some operations need a second action
//! (CopyObject reads the source: s3:GetObject) or may need one depending on arguments the
//! scan cannot see (PutObject with tags: s3:PutObjectTagging; reads of SSE-KMS objects:
//! kms:Decrypt); those are `TOLERATED`: a policy may grant them without being flagged.

/// `aws_sdk_<crate>` -> IAM service prefix.
pub fn prefix(service_crate: &str) -> String {
    match service_crate {
        "costexplorer" => "ce",
        "cloudwatchlogs" => "logs",
        "eventbridge" => "events",
        "applicationautoscaling" => "application-autoscaling",
        "sfn" => "states",
        other => other,
    }
    .to_string()
}

/// (prefix, operation lowercased) -> the IAM actions it needs.
const RENAMED: &[(&str, &str, &[&str])] = &[
    ("s3", "listobjectsv2", &["s3:ListBucket"]),
    ("s3", "listobjects", &["s3:ListBucket"]),
    ("s3", "listobjectversions", &["s3:ListBucketVersions"]),
    ("s3", "headobject", &["s3:GetObject"]),
    ("s3", "headbucket", &["s3:ListBucket"]),
    ("s3", "copyobject", &["s3:PutObject", "s3:GetObject"]),
    ("s3", "createmultipartupload", &["s3:PutObject"]),
    ("s3", "uploadpart", &["s3:PutObject"]),
    ("s3", "completemultipartupload", &["s3:PutObject"]),
    ("s3", "uploadpartcopy", &["s3:PutObject", "s3:GetObject"]),
    ("s3", "listparts", &["s3:ListMultipartUploadParts"]),
    (
        "s3",
        "listmultipartuploads",
        &["s3:ListBucketMultipartUploads"],
    ),
    ("s3", "deleteobjects", &["s3:DeleteObject"]),
    (
        "s3",
        "getobjectattributes",
        &["s3:GetObject", "s3:GetObjectAttributes"],
    ),
    (
        "s3",
        "getbucketlifecycleconfiguration",
        &["s3:GetLifecycleConfiguration"],
    ),
    (
        "s3",
        "putbucketlifecycleconfiguration",
        &["s3:PutLifecycleConfiguration"],
    ),
    (
        "s3",
        "deletebucketlifecycle",
        &["s3:PutLifecycleConfiguration"],
    ),
    (
        "s3",
        "getbucketreplication",
        &["s3:GetReplicationConfiguration"],
    ),
    (
        "s3",
        "putbucketreplication",
        &["s3:PutReplicationConfiguration"],
    ),
    (
        "s3",
        "getbucketinventoryconfiguration",
        &["s3:GetInventoryConfiguration"],
    ),
    (
        "s3",
        "listbucketinventoryconfigurations",
        &["s3:GetInventoryConfiguration"],
    ),
    (
        "s3",
        "putbucketinventoryconfiguration",
        &["s3:PutInventoryConfiguration"],
    ),
    (
        "s3",
        "getbucketnotificationconfiguration",
        &["s3:GetBucketNotification"],
    ),
    (
        "s3",
        "putbucketnotificationconfiguration",
        &["s3:PutBucketNotification"],
    ),
    ("lambda", "invoke", &["lambda:InvokeFunction"]),
    ("lambda", "invokeasync", &["lambda:InvokeFunction"]),
    (
        "lambda",
        "invokewithresponsestream",
        &["lambda:InvokeFunction"],
    ),
    ("sns", "publishbatch", &["sns:Publish"]),
    ("sqs", "sendmessagebatch", &["sqs:SendMessage"]),
    ("sqs", "deletemessagebatch", &["sqs:DeleteMessage"]),
    ("budgets", "describebudget", &["budgets:ViewBudget"]),
    ("budgets", "describebudgets", &["budgets:ViewBudget"]),
    (
        "budgets",
        "describenotificationsforbudget",
        &["budgets:ViewBudget"],
    ),
    (
        "budgets",
        "describesubscribersfornotification",
        &["budgets:ViewBudget"],
    ),
    (
        "budgets",
        "describebudgetperformancehistory",
        &["budgets:ViewBudget"],
    ),
    ("budgets", "createbudget", &["budgets:ModifyBudget"]),
    ("budgets", "updatebudget", &["budgets:ModifyBudget"]),
    ("budgets", "deletebudget", &["budgets:ModifyBudget"]),
    ("budgets", "createnotification", &["budgets:ModifyBudget"]),
    ("budgets", "updatenotification", &["budgets:ModifyBudget"]),
    ("budgets", "deletenotification", &["budgets:ModifyBudget"]),
    ("budgets", "createsubscriber", &["budgets:ModifyBudget"]),
    ("budgets", "updatesubscriber", &["budgets:ModifyBudget"]),
    ("budgets", "deletesubscriber", &["budgets:ModifyBudget"]),
];

/// (prefix, operation lowercased) -> actions a policy may grant for it without being flagged
/// as extra, because whether the call needs them depends on arguments or data.
const TOLERATED: &[(&str, &str, &[&str])] = &[
    // A read of a missing key answers 403 instead of 404 without s3:ListBucket; versioned
    // reads; SSE-KMS objects.
    (
        "s3",
        "getobject",
        &["s3:ListBucket", "s3:GetObjectVersion", "kms:Decrypt"],
    ),
    (
        "s3",
        "headobject",
        &["s3:ListBucket", "s3:GetObjectVersion", "kms:Decrypt"],
    ),
    (
        "s3",
        "getobjecttagging",
        &["s3:ListBucket", "s3:GetObjectVersionTagging"],
    ),
    // Tags on write (x-amz-tagging, TaggingDirective REPLACE), SSE-KMS on write.
    (
        "s3",
        "putobject",
        &["s3:PutObjectTagging", "kms:GenerateDataKey", "kms:Decrypt"],
    ),
    (
        "s3",
        "copyobject",
        &[
            "s3:PutObjectTagging",
            "s3:GetObjectTagging",
            "kms:GenerateDataKey",
            "kms:Decrypt",
        ],
    ),
    (
        "s3",
        "createmultipartupload",
        &["s3:PutObjectTagging", "kms:GenerateDataKey", "kms:Decrypt"],
    ),
    (
        "s3",
        "uploadpartcopy",
        &["kms:GenerateDataKey", "kms:Decrypt"],
    ),
    // PutObjectTagging with a version id is s3:PutObjectVersionTagging.
    ("s3", "putobjecttagging", &["s3:PutObjectVersionTagging"]),
    ("s3", "deleteobject", &["s3:DeleteObjectVersion"]),
    // Tags given at start / restore.
    // FIS takes the template's experiment role when it starts; whether the caller needs
    // iam:PassRole for it is not settled in AWS's docs, so a policy may grant it.
    (
        "fis",
        "startexperiment",
        &["fis:TagResource", "iam:PassRole"],
    ),
    // A source encrypted with a customer managed key: RDS creates the new instance's grants on
    // the key as the caller, who needs kms:CreateGrant and kms:DescribeKey on it (RDS user
    // guide, "Authorizing use of a customer managed key"); the SDK call does not show the key.
    (
        "rds",
        "restoredbinstancetopointintime",
        &[
            "rds:AddTagsToResource",
            "iam:PassRole",
            "kms:CreateGrant",
            "kms:DescribeKey",
        ],
    ),
    (
        "rds",
        "restoredbclustertopointintime",
        &[
            "rds:AddTagsToResource",
            "kms:CreateGrant",
            "kms:DescribeKey",
        ],
    ),
    (
        "rds",
        "restoredbinstancefromdbsnapshot",
        &[
            "rds:AddTagsToResource",
            "iam:PassRole",
            "kms:CreateGrant",
            "kms:DescribeKey",
        ],
    ),
    (
        "rds",
        "createdbinstancereadreplica",
        &[
            "rds:AddTagsToResource",
            "iam:PassRole",
            "kms:CreateGrant",
            "kms:DescribeKey",
        ],
    ),
    ("ecs", "runtask", &["iam:PassRole"]),
    ("ssm", "getparameter", &["kms:Decrypt"]),
    ("ssm", "getparameters", &["kms:Decrypt"]),
    ("secretsmanager", "getsecretvalue", &["kms:Decrypt"]),
];

/// The IAM actions an operation needs (lowercased for comparison, display form kept).
pub fn needed(service_crate: &str, method: &str) -> Vec<String> {
    let p = prefix(service_crate);
    let op = crate::source::pascal(method);
    let key = op.to_ascii_lowercase();
    match RENAMED.iter().find(|(s, o, _)| *s == p && *o == key) {
        Some((_, _, acts)) => acts.iter().map(|a| a.to_string()).collect(),
        None => vec![format!("{p}:{op}")],
    }
}

pub fn tolerated(service_crate: &str, method: &str) -> Vec<String> {
    let p = prefix(service_crate);
    let key = crate::source::pascal(method).to_ascii_lowercase();
    TOLERATED
        .iter()
        .filter(|(s, o, _)| *s == p && *o == key)
        .flat_map(|(_, _, a)| a.iter().map(|x| x.to_string()))
        .collect()
}

/// IAM action names compare case-insensitively.
pub fn norm(action: &str) -> String {
    action.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping() {
        assert_eq!(needed("s3", "put_object"), vec!["s3:PutObject"]);
        assert_eq!(needed("s3", "list_objects_v2"), vec!["s3:ListBucket"]);
        assert_eq!(needed("lambda", "invoke"), vec!["lambda:InvokeFunction"]);
        assert_eq!(
            needed("costexplorer", "get_cost_and_usage"),
            vec!["ce:GetCostAndUsage"]
        );
        assert_eq!(
            norm(&needed("rds", "describe_db_instances")[0]),
            norm("rds:DescribeDBInstances")
        );
        assert!(tolerated("s3", "get_object").contains(&"s3:ListBucket".to_string()));
        assert!(tolerated("rds", "restore_db_instance_to_point_in_time")
            .contains(&"kms:CreateGrant".to_string()));
    }
}
