{{/*
What the operator may do, and nothing more; the same rules as deploy/operator/rbac.yaml
(operator/tests/packaging.rs checks that they agree):
- BinlogClusters: read and watch, add/remove its finalizer, write status; finalizers update lets
  it set blockOwnerDeletion on the objects it owns;
- the objects it builds: create and server-side apply (patch); delete only what it removes itself;
- Secrets: get only (a BinlogCluster's cluster TLS Secret, to reach PD over TLS);
- Events: create, and patch for repeat counts.
*/}}
{{- define "binlog-operator.rules" }}
- apiGroups: ["binlog.tidb-rs.dev"]
  resources: ["binlogclusters"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["binlog.tidb-rs.dev"]
  resources: ["binlogclusters/status"]
  verbs: ["get", "patch"]
- apiGroups: ["binlog.tidb-rs.dev"]
  resources: ["binlogclusters/finalizers"]
  verbs: ["update"]
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["services", "configmaps"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "list", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
