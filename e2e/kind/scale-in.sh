#!/usr/bin/env bash
# NEEDS A REAL KUBERNETES CLUSTER. Not run by scripts/test or CI (there is no cluster there; the
# same choreography is tested offline by e2e/tests/operator_scale_in.rs against a fake API).
#
# End-to-end check of the operator on a cluster you provide: a kind cluster it creates, or the
# current kubectl context with USE_CURRENT_CONTEXT=1. The cluster must run a TiDB cluster whose
# PD the pumps can register in (tidb-operator's TidbCluster `basic`, TiDB <= v8.3, in namespace
# $NAMESPACE, PD Service $PD_SERVICE); TiDB itself needs binlog enabled to send writes.
#
# Steps: build and load the images, install the chart, create a BinlogCluster (3 pumps, a file
# drainer), wait until Available, `kubectl scale` it to 1 and check that pumps 2 then 1 went
# offline before their pods went, then delete it and check the finalizer let go only after every
# pump and drainer was offline.
#
# Needs: docker, kind (unless USE_CURRENT_CONTEXT=1), kubectl, helm, cargo.
# Env: NAMESPACE (tidb), PD_SERVICE (basic-pd), CLUSTER (binlog-e2e), TAG (e2e),
#      KIND_CLUSTER (binlog-e2e), USE_CURRENT_CONTEXT (0), TIMEOUT (600s per wait).
set -euo pipefail
cd "$(dirname "$0")/../.."

namespace="${NAMESPACE:-tidb}"
pd_service="${PD_SERVICE:-basic-pd}"
cluster="${CLUSTER:-binlog-e2e}"
tag="${TAG:-e2e}"
kind_cluster="${KIND_CLUSTER:-binlog-e2e}"
timeout="${TIMEOUT:-600s}"

for tool in docker kubectl helm cargo; do
  command -v "$tool" >/dev/null || { echo "kind/scale-in: $tool is required" >&2; exit 2; }
done

if [ "${USE_CURRENT_CONTEXT:-0}" != 1 ]; then
  command -v kind >/dev/null || { echo "kind/scale-in: kind is required (or USE_CURRENT_CONTEXT=1)" >&2; exit 2; }
  kind get clusters | grep -qx "$kind_cluster" || kind create cluster --name "$kind_cluster"
fi

echo "== images"
cargo build --release -p binlog-pump -p binlog-drainer -p binlogctl -p binlog-operator --bins
scripts/images --profile release --tag "$tag"
if [ "${USE_CURRENT_CONTEXT:-0}" != 1 ]; then
  kind load docker-image --name "$kind_cluster" "tidb-binlog-rs:$tag" "binlog-operator:$tag"
fi

echo "== operator"
helm upgrade --install binlog-operator charts/binlog-operator \
  --namespace binlog-operator --create-namespace \
  --set image.tag="$tag" --set image.pullPolicy=IfNotPresent --wait

echo "== BinlogCluster $namespace/$cluster"
kubectl get namespace "$namespace" >/dev/null
kubectl -n "$namespace" get service "$pd_service" >/dev/null || {
  echo "kind/scale-in: no PD Service $namespace/$pd_service; install a TidbCluster first" >&2
  exit 2
}
kubectl apply -f - <<YAML
apiVersion: binlog.tidb-rs.dev/v1alpha1
kind: BinlogCluster
metadata:
  name: $cluster
  namespace: $namespace
spec:
  pd: {service: {name: $pd_service}}
  image: tidb-binlog-rs:$tag
  imagePullPolicy: IfNotPresent
  pump:
    replicas: 3
    storage: {size: 2Gi}
  drainers:
    - name: files
      downstream: {file: {}}
      storage: {size: 2Gi}
  drainerVolumeRetention: Delete
YAML
kubectl -n "$namespace" wait "bc/$cluster" --for=condition=Available --timeout="$timeout"
kubectl -n "$namespace" get bc "$cluster"

echo "== scale 3 -> 1"
kubectl -n "$namespace" scale "bc/$cluster" --replicas=1
kubectl -n "$namespace" wait "statefulset/$cluster-pump" --for=jsonpath='{.status.replicas}'=1 --timeout="$timeout"
members="$(kubectl -n "$namespace" get bc "$cluster" -o jsonpath='{range .status.pump.members[*]}{.nodeId}={.state}{"\n"}{end}')"
echo "$members"
[ "$members" = "$cluster-pump-0=online" ] || { echo "kind/scale-in: unexpected pump members" >&2; exit 1; }
kubectl -n "$namespace" get events --field-selector "involvedObject.name=$cluster" \
  -o custom-columns=REASON:.reason,MESSAGE:.message | grep -E "ClosingPump|PumpScaledIn"
for ordinal in 1 2; do
  kubectl -n "$namespace" get pvc "data-$cluster-pump-$ordinal" \
    -o jsonpath='{.metadata.annotations.binlog\.tidb-rs\.dev/scaled-in-at}' | grep -q . \
    || { echo "kind/scale-in: volume of pump $ordinal is not marked" >&2; exit 1; }
done

echo "== delete"
kubectl -n "$namespace" delete "bc/$cluster" --wait=true --timeout="$timeout"
echo "kind/scale-in: OK"
