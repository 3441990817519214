#!/usr/bin/env bash
# The release steps of .github/workflows/release.yml, one sub-command each, so the workflow stays readable
# and every step can be re-run by hand from a laptop with the same environment (docs/CICD.md, "Rollback").
#
#   deploy.sh image-ref       REGISTRY ECR_REPOSITORY GITHUB_SHA -> outputs image=, exists=true|false
#   deploy.sh check-order     DEPLOY_ENV GITHUB_SHA GITHUB_REPOSITORY GH_TOKEN -> output proceed=true|false
#   deploy.sh helm-upgrade    DEPLOY_ENV IMAGE EKS_CLUSTER AWS_REGION K8S_NAMESPACE HELM_RELEASE HELM_VALUES
#   deploy.sh smoke           K8S_NAMESPACE HELM_RELEASE IMAGE (+ KUBECONFIG from helm-upgrade)
#   deploy.sh advance-ref     DEPLOY_ENV GITHUB_SHA GITHUB_REPOSITORY GH_TOKEN
#   deploy.sh rollback        K8S_NAMESPACE HELM_RELEASE (helm rollback to the previous revision)
#   deploy.sh report-failure  K8S_NAMESPACE HELM_RELEASE
#
# Inputs arrive only as environment variables (never ${{ }} text spliced into a shell), and every value is
# quoted. Outputs go to $GITHUB_OUTPUT when set, else to stdout.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
readonly SCRIPT_DIR REPO_ROOT
# The official Airflow chart's repository; the umbrella chart's dependency is pinned in chart/Chart.lock.
readonly AIRFLOW_CHART_REPO_NAME="apache-airflow"
readonly AIRFLOW_CHART_REPO_URL="https://airflow.apache.org"
readonly HELM_TIMEOUT="${HELM_TIMEOUT:-20m}"
readonly SMOKE_PORT="${SMOKE_PORT:-18080}"

die() {
  printf '::error::deploy.sh: %s\n' "$*" >&2
  exit 1
}

require_env() {
  local name
  for name in "$@"; do
    [[ -n "${!name:-}" ]] || die "environment variable $name is empty; set it (see docs/CICD.md, 'Repository variables')."
  done
}

emit_output() {
  # emit_output KEY VALUE -- a step output in Actions, a plain line elsewhere.
  if [[ -n "${GITHUB_OUTPUT:-}" ]]; then
    printf '%s=%s\n' "$1" "$2" >>"$GITHUB_OUTPUT"
  else
    printf '%s=%s\n' "$1" "$2"
  fi
}

deploy_branch() {
  printf 'deploy/%s' "$DEPLOY_ENV"
}

use_kubeconfig() {
  export KUBECONFIG="${KUBECONFIG:-${RUNNER_TEMP:-/tmp}/kubeconfig-${DEPLOY_ENV:-local}}"
}

cmd_image_ref() {
  require_env REGISTRY ECR_REPOSITORY GITHUB_SHA
  local image="$REGISTRY/$ECR_REPOSITORY:$GITHUB_SHA"
  emit_output image "$image"
  # Tags are immutable in ECR, so a re-run of a release must reuse the image, not try to push again.
  if aws ecr describe-images --repository-name "$ECR_REPOSITORY" --image-ids "imageTag=$GITHUB_SHA" \
    >/dev/null 2>&1; then
    echo "deploy.sh: $image already exists in ECR; it will be deployed as is."
    emit_output exists true
  else
    emit_output exists false
  fi
}

deployed_sha() {
  # The commit deploy/<env> points at; empty when the branch does not exist (404). Any other API failure
  # stops the release: guessing "first deploy" on a 401 or an outage could move an environment backwards.
  local errors sha
  errors="$(mktemp)"
  if sha="$(gh api "repos/$GITHUB_REPOSITORY/git/ref/heads/$(deploy_branch)" --jq '.object.sha' 2>"$errors")"; then
    printf '%s' "$sha"
  elif grep -q 'HTTP 404' "$errors"; then
    printf ''
  else
    die "could not read $(deploy_branch) through the GitHub API: $(cat "$errors")"
  fi
}

cmd_check_order() {
  require_env DEPLOY_ENV GITHUB_SHA GITHUB_REPOSITORY GH_TOKEN
  local branch deployed status
  branch="$(deploy_branch)"
  deployed="$(deployed_sha)"
  if [[ -z "$deployed" ]]; then
    echo "deploy.sh: $branch does not exist yet; this is the first deploy to $DEPLOY_ENV."
    emit_output proceed true
    return
  fi
  status="$(gh api "repos/$GITHUB_REPOSITORY/compare/$deployed...$GITHUB_SHA" --jq '.status')" \
    || die "could not compare $deployed...$GITHUB_SHA through the GitHub API."
  case "$status" in
    ahead | identical)
      echo "deploy.sh: $DEPLOY_ENV runs $deployed; $GITHUB_SHA is $status of it -> deploying."
      emit_output proceed true
      ;;
    behind)
      # A slower run for an older commit finished after a newer one deployed: skip, do not roll back.
      echo "::notice::$DEPLOY_ENV already runs $deployed, which is newer than $GITHUB_SHA; skipping."
      emit_output proceed false
      ;;
    *)
      die "$branch ($deployed) and $GITHUB_SHA have diverged ($status): $branch was moved by hand. Reset it to a commit on main (docs/CICD.md, 'Rollback') before deploying."
      ;;
  esac
}

delete_finished_jobs() {
  # chart/values.yaml runs the DB migration (and kind's create-user) as plain Jobs, not Helm hooks, so that
  # --wait-for-jobs covers them. A Job's pod template is immutable: the previous release's finished Job
  # (kept for ttlSecondsAfterFinished) must go before Helm can create the new one with the new image.
  kubectl --namespace "$K8S_NAMESPACE" delete job --ignore-not-found \
    "$HELM_RELEASE-run-airflow-migrations" "$HELM_RELEASE-create-user" >/dev/null
}

cmd_helm_upgrade() {
  require_env DEPLOY_ENV IMAGE EKS_CLUSTER AWS_REGION K8S_NAMESPACE HELM_RELEASE HELM_VALUES
  use_kubeconfig
  # shellcheck disable=SC2153 # IMAGE is an input from the environment (checked by require_env above)
  local repository="${IMAGE%:*}" tag="${IMAGE##*:}" values=() files=() file
  [[ "$repository" != "$IMAGE" && -n "$tag" && "$tag" != */* ]] \
    || die "IMAGE '$IMAGE' is not of the form <registry>/<repo>:<tag>."
  read -r -a files <<<"$HELM_VALUES"
  for file in "${files[@]}"; do
    [[ -f "$REPO_ROOT/$file" ]] || die "values file $file (from HELM_VALUES) does not exist."
    values+=(--values "$REPO_ROOT/$file")
  done

  aws eks update-kubeconfig --name "$EKS_CLUSTER" --region "$AWS_REGION" --kubeconfig "$KUBECONFIG" >/dev/null
  helm repo add "$AIRFLOW_CHART_REPO_NAME" "$AIRFLOW_CHART_REPO_URL" --force-update >/dev/null
  helm dependency build "$REPO_ROOT/chart"
  delete_finished_jobs

  # --atomic: a failed install/upgrade (including --wait timing out) rolls back to the last good revision
  # by itself (Helm 4 calls this --rollback-on-failure and keeps --atomic as its alias).
  # --wait/--wait-for-jobs: success means every Deployment/StatefulSet is Ready and the DB migration Job
  # completed, so the smoke check below tests the new pods.
  # GitSync follows deploy/<env>: `ref` is what git-sync v4 reads, `branch` what v3 images read.
  helm upgrade --install "$HELM_RELEASE" "$REPO_ROOT/chart" \
    --namespace "$K8S_NAMESPACE" \
    "${values[@]}" \
    --set-string "airflow.images.airflow.repository=$repository" \
    --set-string "airflow.images.airflow.tag=$tag" \
    --set-string "airflow.dags.gitSync.ref=$(deploy_branch)" \
    --set-string "airflow.dags.gitSync.branch=$(deploy_branch)" \
    --atomic --wait --wait-for-jobs --timeout "$HELM_TIMEOUT" \
    --history-max 20 \
    --description "airbricks $tag by ${GITHUB_ACTOR:-${USER:-unknown}} (run ${GITHUB_RUN_ID:-local})"
}

airflow_version() {
  awk -F'"' '/^appVersion:/ {print $2}' "$REPO_ROOT/chart/Chart.yaml"
}

cmd_smoke() {
  require_env K8S_NAMESPACE HELM_RELEASE IMAGE
  use_kubeconfig
  local pf_log pf_pid wrong
  # 1. Every Airflow workload of the release runs the image we just pushed (no stale ReplicaSet left).
  wrong="$(kubectl --namespace "$K8S_NAMESPACE" get deployments,statefulsets \
    --selector "release=$HELM_RELEASE,tier=airflow" --output json \
    | jq -r --arg repo "${IMAGE%:*}" --arg image "$IMAGE" \
      '.items[] | .metadata.name as $n | .spec.template.spec.containers[]
       | select((.image | startswith($repo + ":")) and .image != $image) | "\($n): \(.image)"')"
  [[ -z "$wrong" ]] || die "workloads not running $IMAGE after the upgrade: $wrong"

  # 2. The REST API answers through the cluster Service, reports the pinned Airflow version and every
  #    component healthy (metadatabase, scheduler, triggerer, dag processor).
  pf_log="$(mktemp)"
  kubectl --namespace "$K8S_NAMESPACE" port-forward "service/$HELM_RELEASE-api-server" \
    "$SMOKE_PORT:8080" >"$pf_log" 2>&1 &
  pf_pid=$!
  # shellcheck disable=SC2064 # expand now: the trap must kill this port-forward, not a later one
  trap "kill $pf_pid 2>/dev/null || true" EXIT
  python3 "$SCRIPT_DIR/airflow_smoke.py" \
    --base-url "http://127.0.0.1:$SMOKE_PORT" \
    --expect-version "$(airflow_version)" \
    --timeout "${SMOKE_TIMEOUT:-300}" \
    || { cat "$pf_log" >&2; die "smoke check failed for $HELM_RELEASE in $K8S_NAMESPACE."; }
}

cmd_advance_ref() {
  require_env DEPLOY_ENV GITHUB_SHA GITHUB_REPOSITORY GH_TOKEN
  local branch deployed
  branch="$(deploy_branch)"
  deployed="$(deployed_sha)"
  # force=false: the API refuses anything but a fast-forward, so a deploy branch never jumps backwards.
  if [[ -n "$deployed" ]]; then
    gh api --method PATCH "repos/$GITHUB_REPOSITORY/git/refs/heads/$branch" \
      -f "sha=$GITHUB_SHA" -F force=false >/dev/null
  else
    gh api --method POST "repos/$GITHUB_REPOSITORY/git/refs" \
      -f "ref=refs/heads/$branch" -f "sha=$GITHUB_SHA" >/dev/null
  fi
  echo "deploy.sh: $branch -> $GITHUB_SHA; GitSync in $DEPLOY_ENV picks it up on its next poll."
}

cmd_rollback() {
  require_env K8S_NAMESPACE HELM_RELEASE
  use_kubeconfig
  local revisions
  revisions="$(helm history "$HELM_RELEASE" --namespace "$K8S_NAMESPACE" --output json | jq 'length')"
  if ((revisions < 2)); then
    die "$HELM_RELEASE has no earlier revision to roll back to (first install); fix forward or 'helm uninstall'."
  fi
  # No revision number = the previous one. The Airflow metadata DB is NOT rolled back: the image stays on the
  # same pinned Airflow version, so its schema is unchanged (docs/CICD.md, "Rollback").
  delete_finished_jobs
  helm rollback "$HELM_RELEASE" --namespace "$K8S_NAMESPACE" --wait --wait-for-jobs --timeout "$HELM_TIMEOUT"
  echo "::warning::$HELM_RELEASE rolled back to its previous revision; deploy/$DEPLOY_ENV was not moved."
}

cmd_report_failure() {
  use_kubeconfig
  echo "::group::helm history ${HELM_RELEASE:-?} (namespace ${K8S_NAMESPACE:-?})"
  helm history "${HELM_RELEASE:-}" --namespace "${K8S_NAMESPACE:-}" --max 5 || true
  echo "::endgroup::"
  cat >&2 <<EOF
::error::Deploy to ${DEPLOY_ENV:-?} failed. If helm upgrade failed, --atomic already rolled the release back.
If the smoke check failed, the new release is live but the deploy branch did NOT move (DAGs unchanged).
Roll back by hand:  helm rollback ${HELM_RELEASE:-<release>} <REVISION> --namespace ${K8S_NAMESPACE:-<ns>} --wait
(pick REVISION from the history above; delete the finished migration Job first; docs/CICD.md, "Rollback").
EOF
}

main() {
  local command="${1:-}"
  case "$command" in
    image-ref) cmd_image_ref ;;
    check-order) cmd_check_order ;;
    helm-upgrade) cmd_helm_upgrade ;;
    smoke) cmd_smoke ;;
    advance-ref) cmd_advance_ref ;;
    rollback) cmd_rollback ;;
    report-failure) cmd_report_failure ;;
    *) die "unknown command '${command}'. Use one of: image-ref check-order helm-upgrade smoke advance-ref rollback report-failure." ;;
  esac
}

main "$@"
