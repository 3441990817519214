#!/usr/bin/env bash
# airbricks on a local kind cluster: the official Airflow chart (KubernetesExecutor + GitSync) with MinIO and
# the Databricks emulator in-cluster. Called by the Makefile; see docs/KUBERNETES.md.
#
#   scripts/kind.sh up        create cluster (if absent), build + load image, secrets (once), helm install, wait
#   scripts/kind.sh deploy    rebuild + reload the image, helm upgrade, wait
#   scripts/kind.sh image     build the image only (docker)
#   scripts/kind.sh ui        port-forward the API server to http://localhost:8080 and print the login
#   scripts/kind.sh status    pods, jobs and the Helm release
#   scripts/kind.sh logs      recent logs of every Airflow component (COMPONENT=scheduler for one)
#   scripts/kind.sh smoke     trigger the demo DAGs through the REST API and wait for success
#   scripts/kind.sh down      delete the cluster (and everything in it)
#
# Environment: GIT_REPO, GIT_BRANCH (DAGs synced by GitSync; default: this checkout's origin and branch),
# GIT_TOKEN (+ GIT_USERNAME) for a private https repo, or GIT_SSH_KEY_FILE + GIT_KNOWN_HOSTS_FILE for ssh,
# AIRBRICKS_LOCAL_DAGS=1 (mount this checkout's dags/ instead of GitSync), GITHUB_API_TOKEN (optional, for
# the GitHub source), SMOKE_DAGS (comma-separated DAG ids for `smoke`), UI_PORT (default 8080).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
readonly CLUSTER_NAME="${KIND_CLUSTER_NAME:-airbricks}"
readonly KUBE_CONTEXT="kind-${CLUSTER_NAME}"
readonly NAMESPACE="airbricks"
readonly RELEASE="airbricks"
readonly IMAGE_REPOSITORY="airbricks-airflow"
readonly STATE_DIR="${REPO_ROOT}/.kind"
readonly CHART_DIR="${REPO_ROOT}/chart"
readonly AIRFLOW_CHART_ARCHIVE="${CHART_DIR}/charts/airflow-1.22.0.tgz"
readonly AIRFLOW_CHART_REPO_NAME="apache-airflow"
readonly AIRFLOW_CHART_REPO_URL="https://airflow.apache.org"
readonly UI_USERNAME="airbricks"
readonly UI_PORT="${UI_PORT:-8080}"
readonly HELM_TIMEOUT="${HELM_TIMEOUT:-15m}"
# Minimum versions: kind v0.31.0 published the pinned node image; Helm >= 3.19 is required by chart 1.22.0;
# kubectl within one minor of the cluster (1.33).
readonly MIN_DOCKER="24.0.0" MIN_KIND="0.31.0" MIN_KUBECTL="1.32.0" MIN_HELM="3.19.0"
readonly EXIT_MISSING_TOOL=127 EXIT_OLD_TOOL=126

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() {
  local code="${2:-1}"
  printf '\033[1;31mkind.sh: %s\033[0m\n' "$1" >&2
  exit "$code"
}

# ---- prerequisites ----------------------------------------------------------------------------------------

install_hint() {
  case "$1" in
    docker) echo "install Docker Desktop or Docker Engine: https://docs.docker.com/get-docker/" ;;
    kind) echo "install kind >= ${MIN_KIND}: https://kind.sigs.k8s.io/docs/user/quick-start/#installation (e.g. 'brew install kind' or 'go install sigs.k8s.io/kind@v${MIN_KIND}')" ;;
    kubectl) echo "install kubectl >= ${MIN_KUBECTL}: https://kubernetes.io/docs/tasks/tools/ (e.g. 'brew install kubectl')" ;;
    helm) echo "install Helm >= ${MIN_HELM}: https://helm.sh/docs/intro/install/ (e.g. 'brew install helm')" ;;
  esac
}

# Prints the bare version (1.2.3) a tool reports.
tool_version() {
  local raw
  case "$1" in
    docker) raw="$(docker version --format '{{.Client.Version}}' 2>/dev/null || true)" ;;
    kind) raw="$(kind version 2>/dev/null || true)" ;;
    kubectl) raw="$(kubectl version --client 2>/dev/null || true)" ;;
    helm) raw="$(helm version --template '{{.Version}}' 2>/dev/null || true)" ;;
  esac
  grep -Eo '[0-9]+\.[0-9]+\.[0-9]+' <<<"$raw" | head -n 1 || true
}

# True when version $1 >= $2 (sort -V orders semantic versions).
version_at_least() {
  [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" == "$2" ]]
}

require_tool() {
  local tool="$1" minimum="$2" version
  command -v "$tool" >/dev/null 2>&1 \
    || die "$tool is not installed (or not on PATH): $(install_hint "$tool")" "$EXIT_MISSING_TOOL"
  version="$(tool_version "$tool")"
  [[ -n "$version" ]] || die "could not read the version of $tool; is it working? $(install_hint "$tool")" "$EXIT_OLD_TOOL"
  version_at_least "$version" "$minimum" \
    || die "$tool $version is too old, airbricks needs >= $minimum: $(install_hint "$tool")" "$EXIT_OLD_TOOL"
}

check_prerequisites() {
  local tool
  for tool in "$@"; do
    case "$tool" in
      docker) require_tool docker "$MIN_DOCKER" ;;
      kind) require_tool kind "$MIN_KIND" ;;
      kubectl) require_tool kubectl "$MIN_KUBECTL" ;;
      helm) require_tool helm "$MIN_HELM" ;;
    esac
  done
  if [[ " $* " == *" docker "* ]]; then
    docker info >/dev/null 2>&1 || die "the Docker daemon is not reachable: start Docker Desktop (or 'sudo systemctl start docker') and retry." 1
  fi
}

kc() { kubectl --context "$KUBE_CONTEXT" --namespace "$NAMESPACE" "$@"; }

# ---- cluster ----------------------------------------------------------------------------------------------

cluster_exists() {
  kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"
}

local_dags_enabled() { [[ "${AIRBRICKS_LOCAL_DAGS:-0}" == "1" ]]; }

# The committed config plus, in local-dags mode, a mount of this checkout's dags/ into the worker node.
# Generated at runtime so no personal path is ever committed.
cluster_config() {
  local generated="${STATE_DIR}/cluster.yaml"
  mkdir -p "$STATE_DIR"
  if local_dags_enabled; then
    awk -v dags="${REPO_ROOT}/dags" '
      { print }
      /^  - role: worker$/ { worker = 1 }
      worker && /^    labels:$/ {
        print "      airbricks.dev/local-dags: \"true\""
        worker = 0
        mounts = 1
      }
      END {
        if (mounts) {
          print "    extraMounts:"
          print "      - hostPath: \"" dags "\""
          print "        containerPath: /airbricks/dags"
          print "        readOnly: true"
        }
      }' "${REPO_ROOT}/k8s/kind/cluster.yaml" >"$generated"
  else
    cp "${REPO_ROOT}/k8s/kind/cluster.yaml" "$generated"
  fi
  printf '%s\n' "$generated"
}

ensure_cluster() {
  if cluster_exists; then
    log "kind cluster '$CLUSTER_NAME' exists: reusing it"
    if local_dags_enabled && [[ -z "$(kubectl --context "$KUBE_CONTEXT" get nodes -l airbricks.dev/local-dags=true -o name)" ]]; then
      die "cluster '$CLUSTER_NAME' was created without the local-dags mount; run 'make kind-down' then 'AIRBRICKS_LOCAL_DAGS=1 make kind-up'." 1
    fi
    return 0
  fi
  log "creating kind cluster '$CLUSTER_NAME' (Kubernetes 1.33, control plane + worker)"
  kind create cluster --name "$CLUSTER_NAME" --config "$(cluster_config)" --wait 180s
}

# ---- image ------------------------------------------------------------------------------------------------

# Builds the image and prints its content tag (sha-<12 hex of the image ID>): the same sources give the
# same ID (layer cache), so an unchanged rerun reuses everything and a change rolls the pods.
build_image() {
  local revision image_id tag
  revision="$(git -C "$REPO_ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
  log "building ${IMAGE_REPOSITORY} from cicd/Dockerfile (revision ${revision})"
  docker build --file "${REPO_ROOT}/cicd/Dockerfile" --tag "${IMAGE_REPOSITORY}:dev" \
    --build-arg "REVISION=${revision}" "$REPO_ROOT" >&2
  image_id="$(docker image inspect --format '{{.Id}}' "${IMAGE_REPOSITORY}:dev")"
  image_id="${image_id#sha256:}"
  tag="sha-${image_id:0:12}"
  docker tag "${IMAGE_REPOSITORY}:dev" "${IMAGE_REPOSITORY}:${tag}"
  printf '%s\n' "$tag"
}

load_image() {
  log "loading ${IMAGE_REPOSITORY}:$1 into the kind nodes"
  kind load docker-image "${IMAGE_REPOSITORY}:$1" --name "$CLUSTER_NAME" >&2
}

# ---- secrets ----------------------------------------------------------------------------------------------

# Reads a bounded amount of randomness (no SIGPIPE under pipefail); 4 KiB leave ~990 alphanumerics.
random_token() { head -c 4096 /dev/urandom | LC_ALL=C tr -dc 'A-Za-z0-9' | cut -c "1-${1:-40}"; }
# A Fernet key: 32 random bytes, url-safe base64.
fernet_key() { head -c 32 /dev/urandom | base64 | tr -d '\n' | tr '+/' '-_'; }

secret_exists() { kc get secret "$1" >/dev/null 2>&1; }

secret_value() {
  kc get secret "$1" -o "jsonpath={.data.$2}" | base64 --decode
}

# secret_files NAME KEY=VALUE... -> --from-file arguments; values go through 0600 files, never argv.
write_secret_files() {
  local dir="$1" pair
  shift
  for pair in "$@"; do
    printf '%s' "${pair#*=}" >"${dir}/${pair%%=*}"
    printf -- '--from-file=%s=%s\n' "${pair%%=*}" "${dir}/${pair%%=*}"
  done
}

with_secret_dir() {
  local dir status=0
  dir="$(mktemp -d)"
  chmod 700 "$dir"
  "$@" "$dir" || status=$?
  rm -rf "$dir"
  return "$status"
}

_create_secret() {
  local name="$1" dir="${*: -1}" args=()
  mapfile -t args < <(write_secret_files "$dir" "${@:2:$#-2}")
  kc create secret generic "$name" "${args[@]}" >/dev/null
}

_apply_secret() {
  local name="$1" dir="${*: -1}" args=()
  mapfile -t args < <(write_secret_files "$dir" "${@:2:$#-2}")
  kc create secret generic "$name" "${args[@]}" --dry-run=client --output yaml | kc apply -f - >/dev/null
}

# Generated secrets are created once and kept: a rerun must never rotate them (running tasks, encrypted
# connections and the UI login depend on them).
create_secret_once() {
  local name="$1"
  if secret_exists "$name"; then
    log "secret $name exists: kept"
    return 0
  fi
  log "secret $name: generated"
  with_secret_dir _create_secret "$@"
}

# Derived or user-supplied secrets follow their inputs on every run (apply is a no-op when unchanged).
apply_secret() {
  with_secret_dir _apply_secret "$@"
}

ensure_secrets() {
  create_secret_once airbricks-fernet-key "fernet-key=$(fernet_key)"
  create_secret_once airbricks-api-secret-key "api-secret-key=$(random_token 48)"
  create_secret_once airbricks-jwt-secret "jwt-secret=$(random_token 48)"
  create_secret_once airbricks-ui-login "username=${UI_USERNAME}" "password=$(random_token 20)"
  create_secret_once airbricks-postgresql "postgres-password=$(random_token 32)"
  create_secret_once airbricks-minio "root-user=airbricks-$(random_token 8 | tr '[:upper:]' '[:lower:]')" \
    "root-password=$(random_token 40)"
  create_secret_once airbricks-databricks-emulator "token=dapi$(random_token 32)"

  local pg_password minio_user minio_password emulator_token s3 github
  pg_password="$(secret_value airbricks-postgresql postgres-password)"
  minio_user="$(secret_value airbricks-minio root-user)"
  minio_password="$(secret_value airbricks-minio root-password)"
  emulator_token="$(secret_value airbricks-databricks-emulator token)"
  create_secret_once airbricks-metadata-db \
    "connection=postgresql://postgres:${pg_password}@${RELEASE}-postgresql.${NAMESPACE}:5432/postgres?sslmode=disable"

  s3="{\"conn_type\": \"aws\", \"login\": \"${minio_user}\", \"password\": \"${minio_password}\", \"extra\": {\"endpoint_url\": \"http://minio.${NAMESPACE}:9000\", \"region_name\": \"us-east-1\"}}"
  github='{"conn_type": "http", "host": "api.github.com", "schema": "https"'
  [[ -n "${GITHUB_API_TOKEN:-}" ]] && github+=", \"password\": \"${GITHUB_API_TOKEN}\""
  github+='}'
  apply_secret airbricks-connections \
    "AIRFLOW_CONN_AWS_DEFAULT=${s3}" \
    "AIRFLOW_CONN_AWS_LOGS=${s3}" \
    "AIRFLOW_CONN_DATABRICKS_DEFAULT={\"conn_type\": \"databricks\", \"host\": \"databricks-emulator.${NAMESPACE}\", \"schema\": \"http\", \"port\": 8080, \"password\": \"${emulator_token}\"}" \
    'AIRFLOW_CONN_HTTP_HACKERNEWS={"conn_type": "http", "host": "hn.algolia.com", "schema": "https"}' \
    "AIRFLOW_CONN_HTTP_GITHUB=${github}"
  # For pods started by KubernetesPodOperator (dags/containerised_*.py): the AWS CLI pointed at MinIO.
  apply_secret airbricks-pod-aws \
    "AWS_ACCESS_KEY_ID=${minio_user}" "AWS_SECRET_ACCESS_KEY=${minio_password}" \
    "AWS_ENDPOINT_URL=http://minio.${NAMESPACE}:9000"
}

# ---- GitSync ----------------------------------------------------------------------------------------------

default_git_repo() {
  local origin
  origin="$(git -C "$REPO_ROOT" remote get-url origin 2>/dev/null || true)"
  [[ -n "$origin" ]] || return 0
  # Without an ssh key, sync a GitHub ssh remote over https (fine for a public fork; add GIT_TOKEN if private).
  if [[ -z "${GIT_SSH_KEY_FILE:-}" && "$origin" =~ ^git@github\.com:(.+)$ ]]; then
    origin="https://github.com/${BASH_REMATCH[1]}"
  fi
  printf '%s\n' "$origin"
}

# Sets GIT_ARGS (helm arguments for the DAG source) and creates the GitSync credentials Secret when
# credentials are given. A global array, not stdout: a `die` here must stop the script.
GIT_ARGS=()
gitsync_args() {
  GIT_ARGS=()
  if local_dags_enabled; then
    GIT_ARGS=(--values "${CHART_DIR}/values-local-dags.yaml")
    return 0
  fi
  local repo branch
  repo="${GIT_REPO:-$(default_git_repo)}"
  branch="${GIT_BRANCH:-$(git -C "$REPO_ROOT" rev-parse --abbrev-ref HEAD 2>/dev/null || echo main)}"
  [[ -n "$repo" ]] || die "no git repository to sync DAGs from: set GIT_REPO=https://github.com/<you>/airbricks.git (your fork) and GIT_BRANCH, or use AIRBRICKS_LOCAL_DAGS=1." 1
  [[ "$repo" =~ ^https?://[^/]*@ ]] && die "GIT_REPO must not contain credentials; pass the token in GIT_TOKEN." 1
  log "GitSync: ${repo} @ ${branch} (subPath dags/)"
  GIT_ARGS=(--set-string "airflow.dags.gitSync.repo=${repo}"
    --set-string "airflow.dags.gitSync.branch=${branch}" --set-string "airflow.dags.gitSync.ref=${branch}")
  if [[ -n "${GIT_TOKEN:-}" ]]; then
    apply_secret airbricks-git-credentials \
      "GITSYNC_USERNAME=${GIT_USERNAME:-x-access-token}" "GITSYNC_PASSWORD=${GIT_TOKEN}" \
      "GIT_SYNC_USERNAME=${GIT_USERNAME:-x-access-token}" "GIT_SYNC_PASSWORD=${GIT_TOKEN}"
    GIT_ARGS+=(--set-string "airflow.dags.gitSync.credentialsSecret=airbricks-git-credentials")
  elif [[ -n "${GIT_SSH_KEY_FILE:-}" ]]; then
    [[ -r "$GIT_SSH_KEY_FILE" ]] || die "GIT_SSH_KEY_FILE=$GIT_SSH_KEY_FILE is not a readable file." 1
    [[ -r "${GIT_KNOWN_HOSTS_FILE:-}" ]] \
      || die "GIT_SSH_KEY_FILE needs GIT_KNOWN_HOSTS_FILE (e.g. ssh-keyscan github.com > known_hosts, then check the fingerprints against your git host's published ones)." 1
    apply_secret airbricks-git-ssh "gitSshKey=$(cat "$GIT_SSH_KEY_FILE")"
    GIT_ARGS+=(--set-string "airflow.dags.gitSync.sshKeySecret=airbricks-git-ssh"
      --set-file "airflow.dags.gitSync.knownHosts=${GIT_KNOWN_HOSTS_FILE}")
  fi
}

# ---- stand-ins and chart ----------------------------------------------------------------------------------

apply_stand_ins() {
  local tag="$1"
  log "applying MinIO and the Databricks emulator (k8s/base)"
  kc apply -f "${REPO_ROOT}/k8s/base/minio.yaml" >/dev/null
  sed -e "s|image: ${IMAGE_REPOSITORY}:kind|image: ${IMAGE_REPOSITORY}:${tag}|" \
    "${REPO_ROOT}/k8s/base/databricks-emulator.yaml" | kc apply -f - >/dev/null
  if local_dags_enabled; then
    kubectl --context "$KUBE_CONTEXT" apply -f "${REPO_ROOT}/k8s/local-dags/volume.yaml" >/dev/null
  fi
}

ensure_chart_dependency() {
  if [[ -f "$AIRFLOW_CHART_ARCHIVE" ]]; then
    return 0
  fi
  log "fetching the official Airflow chart 1.22.0 (helm dependency build)"
  helm repo add "$AIRFLOW_CHART_REPO_NAME" "$AIRFLOW_CHART_REPO_URL" --force-update >/dev/null
  helm dependency build "$CHART_DIR" >&2
}

helm_upgrade() {
  local tag="$1"
  gitsync_args
  ensure_chart_dependency
  # Jobs are immutable and the chart runs them as plain Jobs (chart/values.yaml): drop finished ones so the
  # upgrade recreates them with the new image.
  kc delete job --ignore-not-found "${RELEASE}-run-airflow-migrations" "${RELEASE}-create-user" >/dev/null
  log "helm upgrade --install ${RELEASE} (image ${IMAGE_REPOSITORY}:${tag})"
  helm upgrade --install "$RELEASE" "$CHART_DIR" \
    --kube-context "$KUBE_CONTEXT" --namespace "$NAMESPACE" \
    --values "${CHART_DIR}/values.yaml" --values "${CHART_DIR}/values-local.yaml" \
    "${GIT_ARGS[@]}" \
    --set-string "airflow.images.airflow.tag=${tag}" \
    --wait --wait-for-jobs --timeout "$HELM_TIMEOUT" >&2
}

wait_ready() {
  log "waiting for the stand-ins and Airflow to be ready"
  kc rollout status deployment/minio --timeout 300s >&2
  kc wait --for=condition=complete job/minio-buckets --timeout 300s >&2
  kc rollout status deployment/databricks-emulator --timeout 300s >&2
  local component
  for component in api-server scheduler dag-processor triggerer; do
    kc rollout status "deployment/${RELEASE}-${component}" --timeout 600s >&2
  done
}

print_login() {
  local password
  password="$(secret_value airbricks-ui-login password)"
  cat <<EOF

  Airflow is ready on kind cluster '${CLUSTER_NAME}' (namespace ${NAMESPACE}, release ${RELEASE}).
    make ui            then open http://localhost:${UI_PORT}
    user:              ${UI_USERNAME}
    password:          ${password}
    (kept in Secret airbricks-ui-login: kubectl -n ${NAMESPACE} get secret airbricks-ui-login -o jsonpath='{.data.password}' | base64 --decode)

EOF
}

# ---- commands ---------------------------------------------------------------------------------------------

cmd_up() {
  check_prerequisites docker kind kubectl helm
  ensure_cluster
  local tag
  tag="$(build_image)"
  load_image "$tag"
  kubectl --context "$KUBE_CONTEXT" apply -f "${REPO_ROOT}/k8s/base/namespace.yaml" >/dev/null
  ensure_secrets
  apply_stand_ins "$tag"
  helm_upgrade "$tag"
  wait_ready
  print_login
}

cmd_deploy() {
  check_prerequisites docker kind kubectl helm
  cluster_exists || die "no kind cluster '$CLUSTER_NAME': run 'make kind-up' first." 1
  local tag
  tag="$(build_image)"
  load_image "$tag"
  ensure_secrets
  apply_stand_ins "$tag"
  helm_upgrade "$tag"
  wait_ready
}

cmd_image() {
  check_prerequisites docker
  build_image >/dev/null
}

require_cluster() {
  check_prerequisites kubectl
  kubectl --context "$KUBE_CONTEXT" get namespace "$NAMESPACE" >/dev/null 2>&1 \
    || die "kind cluster '$CLUSTER_NAME' with namespace $NAMESPACE not found: run 'make kind-up' first." 1
}

cmd_ui() {
  require_cluster
  print_login
  log "forwarding http://localhost:${UI_PORT} to svc/${RELEASE}-api-server (Ctrl-C to stop)"
  kc port-forward "svc/${RELEASE}-api-server" "${UI_PORT}:8080"
}

cmd_status() {
  require_cluster
  helm status "$RELEASE" --kube-context "$KUBE_CONTEXT" --namespace "$NAMESPACE" || true
  kc get pods,jobs,pvc -o wide
}

cmd_logs() {
  require_cluster
  local component components=(api-server scheduler dag-processor triggerer)
  [[ -n "${COMPONENT:-}" ]] && components=("$COMPONENT")
  for component in "${components[@]}"; do
    printf '\n----- %s -----\n' "$component"
    kc logs "deployment/${RELEASE}-${component}" --all-containers --prefix --tail "${TAIL:-100}" || true
  done
}

cmd_smoke() {
  require_cluster
  command -v python3 >/dev/null 2>&1 || die "python3 is required for the smoke check." "$EXIT_MISSING_TOOL"
  local port="${SMOKE_PORT:-18080}" pf_pid status=0
  kc port-forward "svc/${RELEASE}-api-server" "${port}:8080" >/dev/null 2>&1 &
  pf_pid=$!
  AIRBRICKS_UI_USERNAME="$(secret_value airbricks-ui-login username)" \
    AIRBRICKS_UI_PASSWORD="$(secret_value airbricks-ui-login password)" \
    python3 "${REPO_ROOT}/scripts/kind_smoke.py" --url "http://127.0.0.1:${port}" \
    --dags "${SMOKE_DAGS:-ingest_hackernews,containerised_partition_report}" || status=$?
  kill "$pf_pid" 2>/dev/null || true
  wait "$pf_pid" 2>/dev/null || true
  [[ "$status" -eq 0 ]] || die "smoke check failed: see 'make logs' and the task logs in the UI ('make ui')." "$status"
}

cmd_down() {
  check_prerequisites kind
  if cluster_exists; then
    log "deleting kind cluster '$CLUSTER_NAME' (secrets, DAG runs and MinIO data go with it)"
    kind delete cluster --name "$CLUSTER_NAME"
  else
    log "no kind cluster '$CLUSTER_NAME': nothing to delete"
  fi
  rm -f "${STATE_DIR}/cluster.yaml"
}

usage() {
  sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

main() {
  local command="${1:-}"
  [[ $# -gt 0 ]] && shift
  case "$command" in
    up) cmd_up "$@" ;;
    deploy) cmd_deploy "$@" ;;
    image) cmd_image "$@" ;;
    ui) cmd_ui "$@" ;;
    status) cmd_status "$@" ;;
    logs) cmd_logs "$@" ;;
    smoke) cmd_smoke "$@" ;;
    down) cmd_down "$@" ;;
    -h | --help | help) usage ;;
    *)
      usage >&2
      die "unknown command '${command}'" 2
      ;;
  esac
}

main "$@"
