{{- /*
Shared pieces of the observability objects (ServiceMonitor, PrometheusRule, Grafana dashboard ConfigMap).
All are off by default; see values.yaml `monitoring:` and docs/OBSERVABILITY.md.
*/ -}}
{{- define "airbricks.monitoring.labels" -}}
app.kubernetes.io/name: airbricks
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: monitoring
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "airbricks.monitoring.requireStatsd" -}}
{{- $airflow := .Values.airflow | default dict -}}
{{- $statsd := $airflow.statsd | default dict -}}
{{- if eq (toString (dig "enabled" true $statsd)) "false" -}}
{{- fail (printf "monitoring.%s.enabled=true needs the StatsD exporter: set airflow.statsd.enabled=true (it is what Prometheus scrapes)" .what) -}}
{{- end -}}
{{- end -}}
