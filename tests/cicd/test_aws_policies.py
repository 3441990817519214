"""docs/aws/ IAM and ECR documents: valid, least-privilege, scoped to this repository's OIDC subjects.

The documents are checked twice: by their meaning here (who may assume which role, on what), and by cfn-lint
(already in the lock, through moto), which validates IAM policy grammar and every action name against AWS's
service reference when the documents are placed in a CloudFormation template -- the way a team applying
them with CloudFormation or Terraform would see a typo, long before a release fails on AssumeRole.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
AWS_DOCS = REPO_ROOT / "docs" / "aws"
CICD_DOC = REPO_ROOT / "docs" / "CICD.md"
WORKFLOWS_DIR = REPO_ROOT / ".github" / "workflows"
OIDC_HOST = "token.actions.githubusercontent.com"
# The subject of each role: the ECR push job runs on main without an environment; deploy jobs run in one.
EXPECTED_SUBJECTS = {
    "trust-ecr-push.json": re.compile(r"^repo:[\w.-]+/[\w.-]+:ref:refs/heads/main$"),
    "trust-deploy-staging.json": re.compile(r"^repo:[\w.-]+/[\w.-]+:environment:staging$"),
    "trust-deploy-production.json": re.compile(r"^repo:[\w.-]+/[\w.-]+:environment:production$"),
}
PERMISSION_POLICIES = ("ecr-push-policy.json", "eks-deploy-policy.json")
# Actions AWS offers no resource-level scope for, so "*" is the only valid Resource.
UNSCOPABLE_ACTIONS = {"ecr:GetAuthorizationToken"}


def load(name: str) -> dict[str, Any]:
    return json.loads((AWS_DOCS / name).read_text())


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    assert document["Version"] == "2012-10-17"
    found = document["Statement"]
    return found if isinstance(found, list) else [found]


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


@pytest.mark.parametrize("name", sorted(path.name for path in AWS_DOCS.glob("*.json")))
def test_every_document_is_json(name: str) -> None:
    assert isinstance(load(name), dict)


@pytest.mark.parametrize("name", sorted(EXPECTED_SUBJECTS))
def test_trust_policy_admits_only_this_repository_subject(name: str) -> None:
    (statement,) = statements(load(name))
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"]["Federated"].endswith(f":oidc-provider/{OIDC_HOST}")
    condition = statement["Condition"]
    # StringEquals only: a StringLike wildcard in `sub` is how other repositories' or branches' workflows
    # get in.
    assert set(condition) == {"StringEquals"}, f"{name}: use StringEquals, not {set(condition)}"
    claims = condition["StringEquals"]
    assert claims[f"{OIDC_HOST}:aud"] == "sts.amazonaws.com"
    subject = claims[f"{OIDC_HOST}:sub"]
    assert isinstance(subject, str), f"{name}: exactly one subject"
    assert "*" not in subject
    assert "?" not in subject
    assert EXPECTED_SUBJECTS[name].match(subject), f"{name}: unexpected subject {subject!r}"


def test_all_roles_trust_the_same_repository() -> None:
    repositories = {
        statements(load(name))[0]["Condition"]["StringEquals"][f"{OIDC_HOST}:sub"].split(":")[1]
        for name in EXPECTED_SUBJECTS
    }
    assert len(repositories) == 1, f"trust policies name different repositories: {repositories}"


@pytest.mark.parametrize("name", PERMISSION_POLICIES)
def test_permission_policy_is_least_privilege(name: str) -> None:
    for statement in statements(load(name)):
        assert statement["Effect"] == "Allow"
        actions = as_list(statement["Action"])
        resources = as_list(statement["Resource"])
        assert not [a for a in actions if "*" in a], f"{name}: wildcard action in {actions}"
        if "*" in resources:
            assert set(actions) <= UNSCOPABLE_ACTIONS, f"{name}: Resource '*' for {actions}"
        else:
            for resource in resources:
                assert resource.startswith("arn:aws:")
                assert not resource.endswith("*"), f"{name}: {resource} is a wildcard"


def test_ecr_push_policy_covers_what_the_release_job_does() -> None:
    granted = {action for s in statements(load("ecr-push-policy.json")) for action in as_list(s["Action"])}
    # docker push (layer upload + manifest), the re-run check (describe-images), and the login token.
    needed = {
        "ecr:GetAuthorizationToken",
        "ecr:BatchCheckLayerAvailability",
        "ecr:InitiateLayerUpload",
        "ecr:UploadLayerPart",
        "ecr:CompleteLayerUpload",
        "ecr:PutImage",
        "ecr:DescribeImages",
    }
    assert needed <= granted, f"missing: {needed - granted}"
    assert not {"ecr:BatchDeleteImage", "ecr:DeleteRepository", "ecr:SetRepositoryPolicy"} & granted


def test_eks_deploy_policy_only_reads_the_cluster() -> None:
    granted = {action for s in statements(load("eks-deploy-policy.json")) for action in as_list(s["Action"])}
    # Everything inside the cluster is granted by the EKS access entry (Kubernetes RBAC), not by IAM.
    assert granted == {"eks:DescribeCluster"}


def test_lifecycle_policy_rules_are_well_formed() -> None:
    rules = load("ecr-lifecycle-policy.json")["rules"]
    priorities = [rule["rulePriority"] for rule in rules]
    assert len(set(priorities)) == len(priorities), "rule priorities must be unique"
    for rule in rules:
        assert rule["action"] == {"type": "expire"}
        selection = rule["selection"]
        assert selection["tagStatus"] in {"tagged", "untagged", "any"}
        if selection["tagStatus"] == "tagged":
            assert selection.get("tagPatternList") or selection.get("tagPrefixList")
    assert any(rule["selection"]["countType"] == "imageCountMoreThan" for rule in rules), "keep a window"


def test_documents_pass_cfn_lint_as_a_cloudformation_template() -> None:
    """The docs' documents, assembled into the roles and repository docs/CICD.md tells you to create."""
    from cfnlint.api import lint_all  # imported here: ~5 s to load, only this test needs it

    def role(trust: str, policy: str) -> dict[str, Any]:
        return {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": load(trust),
                "Policies": [{"PolicyName": Path(policy).stem, "PolicyDocument": load(policy)}],
            },
        }

    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "EcrPushRole": role("trust-ecr-push.json", "ecr-push-policy.json"),
            "DeployStagingRole": role("trust-deploy-staging.json", "eks-deploy-policy.json"),
            "DeployProductionRole": role("trust-deploy-production.json", "eks-deploy-policy.json"),
            "Repository": {
                "Type": "AWS::ECR::Repository",
                "Properties": {
                    "RepositoryName": "airbricks",
                    "ImageTagMutability": "IMMUTABLE",
                    "ImageScanningConfiguration": {"ScanOnPush": True},
                    "LifecyclePolicy": {
                        "LifecyclePolicyText": (AWS_DOCS / "ecr-lifecycle-policy.json").read_text()
                    },
                },
            },
        },
    }
    # Informational rules (I*) only ask for template metadata; errors and warnings must be zero.
    problems = [m for m in lint_all(json.dumps(template)) if not m.rule.id.startswith("I")]
    assert not problems, "\n".join(f"{m.rule.id}: {m.message}" for m in problems)


def test_every_variable_the_workflows_read_is_documented() -> None:
    used = {
        match
        for path in WORKFLOWS_DIR.glob("*.y*ml")
        for match in re.findall(r"vars\.([A-Z0-9_]+)", path.read_text())
    }
    assert used, "the workflows read no repository variables?"
    documented = CICD_DOC.read_text()
    missing = sorted(name for name in used if f"`{name}`" not in documented)
    assert not missing, f"docs/CICD.md does not document variables: {missing}"


def test_docs_reference_every_policy_file() -> None:
    documented = CICD_DOC.read_text()
    missing = sorted(p.name for p in AWS_DOCS.glob("*.json") if f"docs/aws/{p.name}" not in documented)
    assert not missing, f"docs/CICD.md never mentions: {missing}"
