{{/* Names and labels shared by every object of the chart. */}}

{{- define "switchman.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "switchman.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Cluster-scoped objects are shared by every release: qualify them by namespace. */}}
{{- define "switchman.clusterName" -}}
{{- printf "%s-%s" (include "switchman.fullname" .) .Release.Namespace | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "switchman.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "switchman.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: switchman
{{- end -}}

{{- define "switchman.selectorLabels" -}}
app.kubernetes.io/name: {{ include "switchman.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "switchman.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "switchman.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "switchman.webhookService" -}}{{ include "switchman.fullname" . }}-webhook{{- end -}}
{{- define "switchman.metricsService" -}}{{ include "switchman.fullname" . }}-metrics{{- end -}}
{{- define "switchman.caSecret" -}}{{ include "switchman.fullname" . }}-ca{{- end -}}
{{- define "switchman.injectionConfigMap" -}}{{ include "switchman.fullname" . }}-injection{{- end -}}
{{- define "switchman.webhookConfig" -}}{{ include "switchman.clusterName" . }}{{- end -}}

{{/* The Secret with tls.crt/tls.key/ca.crt in secret and certManager modes. */}}
{{- define "switchman.tlsSecret" -}}
{{- if eq .Values.certificates.mode "secret" -}}
{{- required "certificates.existingSecret is required when certificates.mode is secret" .Values.certificates.existingSecret -}}
{{- else -}}
{{- include "switchman.fullname" . }}-tls
{{- end -}}
{{- end -}}

{{/* DNS names of the operator's Services, for certificates. */}}
{{- define "switchman.dnsNames" -}}
{{- $ns := .Release.Namespace -}}
{{- $names := list -}}
{{- range $svc := list (include "switchman.fullname" .) (include "switchman.webhookService" .) -}}
{{- $names = append $names $svc -}}
{{- $names = append $names (printf "%s.%s" $svc $ns) -}}
{{- $names = append $names (printf "%s.%s.svc" $svc $ns) -}}
{{- $names = append $names (printf "%s.%s.svc.%s" $svc $ns $.Values.clusterDomain) -}}
{{- end -}}
{{- join "," $names -}}
{{- end -}}

{{- define "switchman.image" -}}
{{- printf "%s:%s" .image.repository (default .appVersion .image.tag) -}}
{{- end -}}

{{/* Namespaces that are never injected: the chart's list plus the release namespace. */}}
{{- define "switchman.excludedNamespaces" -}}
{{- toJson (uniq (append .Values.injection.excludedNamespaces .Release.Namespace)) -}}
{{- end -}}
